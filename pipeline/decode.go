package pipeline

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// Limits on raw bodies. Pulse messages should stay under 8 KiB; real
// Buildbot messages reach a few hundred KiB with their build steps.
const (
	// MaxBodyBytes is the largest raw body decoded.
	MaxBodyBytes = 4 << 20
	// MaxJSONDepth is the deepest nesting of objects and arrays accepted.
	MaxJSONDepth = 64
)

// Refusal classes: the x-pulsetranslator-class of a parked message.
const (
	ClassTooLarge    = "too_large"
	ClassNotUTF8     = "not_utf8"
	ClassMalformed   = "malformed_json"
	ClassTooDeep     = "too_deep"
	ClassRule        = "rule"
	ClassSchema      = "schema"
	ClassInternal    = "internal"
	ClassBadRoute    = "bad_routing_key"
	ClassPanic       = "panic"
	ClassUnknownTo   = "unknown_output"
	ClassEmptyResult = "no_outputs"
	// ClassBadArtifactURL: a wait_for rule gave a URL that is not http(s).
	ClassBadArtifactURL = "bad_artifact_url"
	// ClassArtifactsMissing: the artifacts did not appear by the deadline.
	ClassArtifactsMissing = "artifacts_missing"
)

// Decode checks a raw body and makes the translator's Message of it. It
// reads the body only; it never looks at what the JSON means. A body that
// is too large, not UTF-8, not JSON or nested too deep is refused.
func Decode(exchange, routingKey string, body []byte, received time.Time) (translator.Message, error) {
	msg := translator.Message{Exchange: exchange, RoutingKey: routingKey, Body: body, Received: received}
	switch {
	case len(body) > MaxBodyBytes:
		return msg, translator.Refuse(ClassTooLarge, "the body has %d bytes; the limit is %d", len(body), MaxBodyBytes)
	case !utf8.Valid(body):
		return msg, translator.Refuse(ClassNotUTF8, "the body is not valid UTF-8; Pulse messages are UTF-8 JSON")
	case !json.Valid(body):
		return msg, translator.Refuse(ClassMalformed, "the body is not well-formed JSON (%s)", syntaxError(body))
	}
	if depth := jsonDepth(body); depth > MaxJSONDepth {
		return msg, translator.Refuse(ClassTooDeep, "the body nests %d levels deep; the limit is %d", depth, MaxJSONDepth)
	}
	return msg, nil
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

// jsonDepth returns the deepest nesting of a well-formed JSON document.
func jsonDepth(body []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}
