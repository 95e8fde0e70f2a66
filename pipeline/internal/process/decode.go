package process

import (
	"encoding/json"
	"mime"
	"strconv"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// Limits on raw bodies. Pulse messages should stay under 8 KiB; real
// Buildbot messages reach a few hundred KiB with their build steps.
const (
	// MaxBodyBytes is the largest raw body Decode reads; a pipeline's
	// limits.max_input_bytes sets its own.
	MaxBodyBytes = config.DefaultMaxInputBytes
	// MaxJSONDepth is the deepest nesting of objects and arrays accepted.
	MaxJSONDepth = translator.MaxDepth
)

// TooLarge is the refusal of a body of size bytes, over the limit
// maxBytes; it is made before anything else is done with the body.
func TooLarge(size, maxBytes int) error {
	return translator.Refuse(pulse.ClassTooLarge, "the body has %d bytes; the limit is %d (limits.max_input_bytes); its parked copy keeps the first %d bytes", size, maxBytes, MaxParkedCutBytes)
}

// MaxParkedCutBytes is how much of a too_large body its parked copy keeps.
const MaxParkedCutBytes = 64 << 10

// Decode checks a raw body and makes the translator's Message of it
// (translator.ReadMessage: the grammar check and the outline in one
// pass), with the delivery's headers as data. It never looks at what the
// JSON means. A body that is too large, not UTF-8, not JSON or nested too
// deep is refused.
func Decode(exchange, routingKey string, headers map[string]any, body []byte, received time.Time) (translator.Message, error) {
	return decode(exchange, routingKey, headers, body, received, MaxBodyBytes)
}

// decode is Decode of a body of at most maxBytes.
func decode(exchange, routingKey string, headers map[string]any, body []byte, received time.Time, maxBytes int) (translator.Message, error) {
	if len(body) > maxBytes {
		msg := translator.Message{Exchange: exchange, RoutingKey: routingKey, Headers: headers, Body: body, Received: received}
		return msg, TooLarge(len(body), maxBytes)
	}
	msg, err := translator.ReadMessage(exchange, routingKey, headers, body, received)
	be, ok := translator.AsBodyError(err)
	if !ok {
		return msg, err
	}
	switch be.Problem {
	case translator.NotUTF8:
		return msg, translator.Refuse(pulse.ClassNotUTF8, "the body is not valid UTF-8; Pulse messages are UTF-8 JSON")
	case translator.TooDeep:
		return msg, translator.Refuse(pulse.ClassTooDeep, "the body nests more than %d levels deep (at byte %d); the limit is %d", MaxJSONDepth, be.Offset, MaxJSONDepth)
	case translator.ControlCharacter:
		return msg, translator.Refuse(pulse.ClassMalformed, "the body is not well-formed JSON (a string holds the raw control character %#x at byte %d; it must be escaped)", body[be.Offset], be.Offset)
	}
	return msg, translator.Refuse(pulse.ClassMalformed, "the body is not well-formed JSON (%s)", syntaxError(body))
}

// CheckContentType accepts a delivery's content type: none (many
// publishers set none) or application/json, with any parameters. Any other
// type is refused, since the body would be read as something it is not.
func CheckContentType(contentType string) error {
	if contentType == "" || contentType == "application/json" {
		return nil // the usual cases, without parsing
	}
	media, _, err := mime.ParseMediaType(contentType)
	if err != nil || media != "application/json" {
		return translator.Refuse(pulse.ClassContentType, "the content type is %.100q; Pulse messages are application/json", contentType)
	}
	return nil
}

// syntaxError describes where a body stops being JSON.
func syntaxError(body []byte) string {
	var v any
	err := json.Unmarshal(body, &v)
	if se, ok := err.(*json.SyntaxError); ok {
		return se.Error() + " at byte " + strconv.FormatInt(se.Offset, 10)
	}
	if err != nil {
		return err.Error()
	}
	return "unknown"
}
