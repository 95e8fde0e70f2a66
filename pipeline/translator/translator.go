// Package translator is the public, stable seam between the pipeline core
// and translator plugins. The core knows a plugin only through the
// Translator interface and the Registry. A plugin registers itself, with
// the JSON Schemas and rule files it ships, in init(), and is pulled into
// a binary by one blank import: from a folder under translators/, or from
// a module of its own with a main of its own (see package cli).
//
// This package depends on nothing of the core's broker, router or
// metrics: a plugin and its golden tests build against it alone.
package translator

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/rawjson"
)

// Message is one raw upstream message as a translator sees it.
//
// The framework makes it with ReadMessage from the AMQP delivery (or,
// offline, from a file), so Body is well-formed UTF-8 JSON. Every field
// is upstream data: the framework decides where outputs go, whatever the
// body or the headers say.
type Message struct {
	// Exchange the message was published to, for example "exchange/build/".
	Exchange string
	// RoutingKey the message was published with.
	RoutingKey string
	// Headers are the delivery's headers as AMQP decoded them: strings,
	// numbers, booleans, times, byte slices, nested maps and slices. Nil
	// offline.
	Headers map[string]any
	// Body is the raw JSON body: for mozillapulse publishers an envelope
	// {"payload": ..., "_meta": {...}}, for taskcluster publishers the payload.
	Body []byte
	// Received is the time the framework took the message in. Translators use
	// it instead of reading the clock, so that a translation is a pure function
	// of its Message.
	Received time.Time

	// members is where the members of the body's outer objects lie, made
	// in the pass that checked the body.
	members *rawjson.Outline
}

// LookupDepth is how deep Lookup finds members: names of objects nested up
// to this depth, each reached from the top through objects only.
const LookupDepth = rawjson.OutlineDepth

// BodyProblem is what is wrong with a body that is not UTF-8 JSON.
type BodyProblem int

// Problems of a body.
const (
	// NotJSON: the body is not JSON by RFC 8259's grammar.
	NotJSON BodyProblem = iota + 1
	// NotUTF8: the body is not valid UTF-8.
	NotUTF8
	// TooDeep: objects and arrays nest deeper than MaxDepth.
	TooDeep
	// ControlCharacter: a string holds a raw control character, which JSON
	// requires escaped.
	ControlCharacter
)

// MaxDepth is the deepest nesting of objects and arrays a body may have.
const MaxDepth = rawjson.MaxDepth

// BodyError says why a body cannot be a Message's, and where.
type BodyError struct {
	Problem BodyProblem
	// Offset is the byte where the body stops being acceptable.
	Offset int
}

// Error says what is wrong with the body and at which byte.
func (e *BodyError) Error() string {
	switch e.Problem {
	case NotUTF8:
		return fmt.Sprintf("the body is not UTF-8 (at byte %d)", e.Offset)
	case TooDeep:
		return fmt.Sprintf("the body nests more than %d levels deep (at byte %d)", MaxDepth, e.Offset)
	case ControlCharacter:
		return fmt.Sprintf("a string of the body holds a raw control character (at byte %d); it must be escaped", e.Offset)
	}
	return fmt.Sprintf("the body is not well-formed JSON (at byte %d)", e.Offset)
}

// ReadMessage checks that body is UTF-8 JSON nested at most MaxDepth deep,
// in one pass that also records where the members of its outer objects
// lie (see Lookup), and returns the Message. A body that is none of that
// gives a *BodyError. Tests of a translator make their messages with it,
// as the framework does.
func ReadMessage(exchange, routingKey string, headers map[string]any, body []byte, received time.Time) (Message, error) {
	msg := Message{Exchange: exchange, RoutingKey: routingKey, Headers: headers, Body: body, Received: received}
	members, fault, at := rawjson.Check(body)
	switch fault {
	case rawjson.OK:
		msg.members = members
		return msg, nil
	case rawjson.NotUTF8:
		return msg, &BodyError{Problem: NotUTF8, Offset: at}
	case rawjson.TooDeep:
		return msg, &BodyError{Problem: TooDeep, Offset: at}
	case rawjson.Control:
		return msg, &BodyError{Problem: ControlCharacter, Offset: at}
	}
	return msg, &BodyError{Problem: NotJSON, Offset: at}
}

// Lookup returns the raw JSON value of the member at path, 1 to
// LookupDepth names from the top-level object down (for example
// "payload", "build", "results"), and whether the body has one, without
// reading the rest of the body. Of members with the same name it takes
// the first, as a parse does. A longer path, or one through anything but
// objects, is not found: look up its first names and parse that value.
//
// A Message that ReadMessage did not make (made by hand) is checked on
// each call; a body that is not UTF-8 JSON gives a *BodyError.
func (m Message) Lookup(path ...string) (raw []byte, found bool, err error) {
	members := m.members
	if members == nil {
		checked, err := ReadMessage(m.Exchange, m.RoutingKey, m.Headers, m.Body, m.Received)
		if err != nil {
			return nil, false, err
		}
		members = checked.members
	}
	raw, found = members.Find(path...)
	return raw, found, nil
}

// LookupString is Lookup of a string member: found is false when the
// body has no member at path or it is null; a member of another type is
// an error that names the path and what it holds.
func (m Message) LookupString(path ...string) (s string, found bool, err error) {
	raw, found, err := m.lookupTyped(path, '"', "a string")
	if !found || err != nil {
		return "", false, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%s: %w", strings.Join(path, "."), err)
	}
	return s, true, nil
}

// LookupNumber is Lookup of a number member, as its exact text (an
// integer beyond 2^53 keeps every digit; n.Int64 and n.Float64 convert
// it): found is false when the body has no member at path or it is null;
// a member of another type is an error.
func (m Message) LookupNumber(path ...string) (n json.Number, found bool, err error) {
	raw, found, err := m.lookupTyped(path, '0', "a number")
	if !found || err != nil {
		return "", false, err
	}
	return json.Number(raw), true, nil
}

// LookupBool is Lookup of a boolean member: found is false when the body
// has no member at path or it is null; a member of another type is an
// error.
func (m Message) LookupBool(path ...string) (b, found bool, err error) {
	raw, found, err := m.lookupTyped(path, 't', "a boolean")
	if !found || err != nil {
		return false, false, err
	}
	return raw[0] == 't', true, nil
}

// lookupTyped looks up path and checks the value's kind by its first
// byte: '"' a string, '0' a number, 't' a boolean.
func (m Message) lookupTyped(path []string, kind byte, want string) ([]byte, bool, error) {
	raw, found, err := m.Lookup(path...)
	if err != nil || !found || len(raw) == 0 || raw[0] == 'n' {
		return nil, false, err
	}
	got := raw[0]
	switch {
	case got == '-' || got >= '0' && got <= '9':
		got = '0'
	case got == 'f':
		got = 't'
	}
	if got != kind {
		return nil, false, fmt.Errorf("%s is %s, not %s", strings.Join(path, "."), kindOf(got), want)
	}
	return raw, true, nil
}

func kindOf(first byte) string {
	switch first {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "not JSON"
}

// AsBodyError returns err as a *BodyError, if it is one.
func AsBodyError(err error) (*BodyError, bool) {
	var be *BodyError
	ok := errors.As(err, &be)
	return be, ok
}

// Output is one normalized message a translator produces.
//
// Who owns it: once Translate returns, the outputs are the framework's.
// Rules may set fields of a payload in place (copying any nested object
// before they change it), gates may add a field, and encoding reads them;
// the translator must not keep, read or change them afterwards. Each
// output's Payload must be a map of its own; nested values (maps, slices)
// may be shared between the outputs of one message, since nothing changes
// them in place.
type Output struct {
	// RoutingKey the output is published with. Required.
	RoutingKey string
	// CC lists extra routing keys the output is also delivered to
	// (RabbitMQ sender-selected distribution). Optional.
	CC []string
	// Payload is the normalized message. Its values must be JSON values as
	// encoding/json decodes them into an any (map[string]any, []any, string,
	// bool, nil, json.Number) or Go integers and float64.
	Payload map[string]any
	// Schema names the JSON Schema the payload must satisfy, by its path in
	// the Schemas of a registered plugin (for example
	// "buildbot/build.json"). Required.
	Schema string
	// To names the pipeline output (exchange) it is published to. Empty means
	// the pipeline's first output.
	To string
}

// Translator turns one raw message into normalized outputs.
//
// The contract:
//  1. Translate is pure: it does no I/O and reads no clock; the same Message
//     always yields the same outputs (or the same error).
//  2. One or more outputs and a nil error: publish them.
//  3. A *Dropped error: the message is not wanted; it is counted and logged
//     with the reason, never published and never parked.
//  4. A *Refusal error: the message cannot be translated; it is parked in the
//     pipeline's dead queue with the class and the reason.
//  5. Any other error, or zero outputs with a nil error, is a bug in the
//     translator; the message is parked with class "internal".
//
// Translate must be safe for concurrent use.
type Translator interface {
	Translate(msg Message) ([]Output, error)
}

// Func adapts a function to the Translator interface.
type Func func(msg Message) ([]Output, error)

// Translate calls f(msg).
func (f Func) Translate(msg Message) ([]Output, error) { return f(msg) }
