package buildbot

import (
	"bytes"
	"encoding/json"
	"fmt"

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
}

// property is one Buildbot property: a [name, value, source] triple, its
// value decoded as encoding/json would with UseNumber: string,
// json.Number, bool, nil, []any or map[string]any.
type property struct {
	Name  string
	Value any
}

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
		if !textProperties[prop.Name] {
			continue
		}
		switch v := prop.Value.(type) {
		case nil, string:
		default:
			return translator.Refuse("bad_property", "%s: the %q property is %s, not a string", key, prop.Name, jsonKind(v))
		}
	}
	return nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
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
