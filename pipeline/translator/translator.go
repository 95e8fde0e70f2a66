// Package translator is the seam between the pipeline core and translator
// plugins. The core knows a plugin only through the Translator interface and
// the Registry; a plugin lives in its own folder under translators/, registers
// itself in init(), and is pulled into a binary by one blank import.
package translator

import (
	"fmt"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/rawjson"
)

// Message is one raw upstream message as a translator sees it.
//
// The framework fills it from the AMQP delivery (or, offline, from a file) and
// has already checked that Body is well-formed UTF-8 JSON.
type Message struct {
	// Exchange the message was published to, for example "exchange/build/".
	Exchange string
	// RoutingKey the message was published with.
	RoutingKey string
	// Body is the raw JSON body: for mozillapulse publishers an envelope
	// {"payload": ..., "_meta": {...}}, for taskcluster publishers the payload.
	Body []byte
	// Received is the time the framework took the message in. Translators use
	// it instead of reading the clock, so that a translation is a pure function
	// of its Message.
	Received time.Time
	// Outline is where the members of the body's outer objects lie, made
	// by the framework in the pass that checks the body, so that a
	// translator finds the values it reads without reading the body again.
	// A Message made by hand may have none; Outlined makes one then.
	Outline *rawjson.Outline
}

// Outlined returns the outline of the message's body: the framework's, or
// one made now when the message was made by hand. A body that is not
// well-formed UTF-8 JSON, which the framework never hands over, has none,
// and the error says where it breaks.
func (m Message) Outlined() (*rawjson.Outline, error) {
	if m.Outline != nil {
		return m.Outline, nil
	}
	outline, fault, at := rawjson.Check(m.Body)
	switch fault {
	case rawjson.OK:
		return outline, nil
	case rawjson.NotUTF8:
		return nil, fmt.Errorf("the body is not UTF-8")
	case rawjson.TooDeep:
		return nil, fmt.Errorf("the body nests more than %d levels deep (at byte %d)", rawjson.MaxDepth, at)
	}
	return nil, fmt.Errorf("the body is not well-formed JSON (at byte %d)", at)
}

// Output is one normalized message a translator produces.
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
	// Schema names the JSON Schema the payload must satisfy, as a path under
	// schemas/ (for example "buildbot/build.json"). Required.
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
