package buildbot

import (
	"bytes"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// rawMessage is the part of a raw Buildbot pulse message the translator
// reads (see parseRawMessage); the rest of the body (build steps, times,
// ...) is skipped.
type rawMessage struct {
	Payload struct {
		Build struct {
			Properties []property `json:"properties"`
			Results    any        `json:"results"`
		} `json:"build"`
	} `json:"payload"`
	// Meta is mozillapulse's envelope; a message without it is not one.
	Meta *struct {
		RoutingKey string `json:"routing_key"`
	} `json:"_meta"`
	// list is the pooled list that holds Properties (see release).
	list *[]property
}

// property is one Buildbot property, a [name, value, source] triple: its
// name, and its raw value in the body, decoded only where the translation
// reads it (most properties of a message, the long uploadFiles among them,
// are never read).
type property struct {
	name []byte
	raw  []byte
}

// value decodes the property's value as encoding/json would with
// UseNumber: string, json.Number, bool, nil, []any or map[string]any.
func (p property) value() any { return decode(p.raw) }

// text returns a value as a string when it is one.
func text(v any) string {
	s, _ := v.(string)
	return s
}

// textProperties are the properties the translation reads as text; a
// value of another JSON type (null aside, which means absent) is a broken
// message, not a missing property.
var textProperties = map[string]bool{
	"branch": true, "platform": true, "stage_platform": true, "buildername": true,
	"product": true, "log_url": true, "locale": true, "locales": true,
}

// checkTextProperties refuses a message whose text properties hold
// numbers, booleans, arrays or objects, naming the property and its type.
func checkTextProperties(key string, props []property) error {
	for _, prop := range props {
		if !textProperties[string(prop.name)] {
			continue
		}
		if c := prop.raw[0]; c != '"' && c != 'n' {
			return translator.Refuse("bad_property", "%s: the %q property is %s, not a string", key, prop.name, kindOf(prop.raw))
		}
	}
	return nil
}

// topLevelKind names the JSON type of a body by its first byte.
func topLevelKind(body []byte) string {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return "empty"
	}
	switch body[0] {
	case '{':
		return "an object"
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a JSON boolean"
	}
	return "a JSON number"
}
