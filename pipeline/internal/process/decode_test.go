package process_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func TestDecodeRefusals(t *testing.T) {
	cases := []struct {
		name  string
		body  []byte
		class string
	}{
		{"not JSON", []byte(`{"a": `), pulse.ClassMalformed},
		{"not UTF-8", []byte("{\"a\": \"\xff\"}"), pulse.ClassNotUTF8},
		{"too deep", []byte(strings.Repeat("[", 65) + strings.Repeat("]", 65)), pulse.ClassTooDeep},
		{"100,000 levels deep, and not JSON", []byte(strings.Repeat("[", 100000)), pulse.ClassTooDeep},
		{"too large", []byte(`"` + strings.Repeat("x", process.MaxBodyBytes) + `"`), pulse.ClassTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := process.Decode("e", "k", nil, c.body, time.Now())
			var r *translator.Refusal
			if !errors.As(err, &r) || r.Class != c.class || r.Reason == "" {
				t.Fatalf("got %v, want a %s refusal with a reason", err, c.class)
			}
		})
	}
	deep := []byte(strings.Repeat("[", 64) + `"[[[[ in a string"` + strings.Repeat("]", 64))
	if _, err := process.Decode("e", "k", nil, deep, time.Now()); err != nil {
		t.Errorf("64 levels with brackets inside a string: %v", err)
	}
}

func TestCheckContentType(t *testing.T) {
	for _, ok := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON"} {
		if err := process.CheckContentType(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"text/plain", "application/x-msgpack", "application/json;;", "json"} {
		var r *translator.Refusal
		if err := process.CheckContentType(bad); !errors.As(err, &r) || r.Class != pulse.ClassContentType {
			t.Errorf("%q: %v, want a %s refusal", bad, err, pulse.ClassContentType)
		}
	}
}

// FuzzDecode: whatever the bytes, Decode does not panic, and what it
// accepts is UTF-8 JSON within the limits.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{`{"payload": {}, "_meta": {}}`, `[`, `[1.5e-3, -0, "\u00e9\n", true, false, null, {}]`, `"\ud800"`, "{\"a\": \"\xff\"}", strings.Repeat("[", 70), `{"a":"[[[["}`, "[\"\xc3\xa9\", \xff]", "[\"\xe2\x9c\x93\"]"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := process.Decode("e", "k", nil, body, time.Time{})
		if err != nil {
			var r *translator.Refusal
			if !errors.As(err, &r) || r.Reason == "" {
				t.Fatalf("an error that is not a refusal with a reason: %v", err)
			}
			if !utf8.Valid(body) && len(body) <= process.MaxBodyBytes && r.Class != pulse.ClassNotUTF8 {
				t.Fatalf("refused a body that is not UTF-8 as %s, not %s: %q", r.Class, pulse.ClassNotUTF8, body)
			}
			if r.Class == pulse.ClassMalformed && json.Valid(body) {
				t.Fatalf("refused as malformed a body encoding/json finds valid: %q", body)
			}
			if r.Class == pulse.ClassTooDeep && nesting(body) <= process.MaxJSONDepth {
				t.Fatalf("refused as too deep a body nested %d deep: %q", nesting(body), body)
			}
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) || len(body) > process.MaxBodyBytes || nesting(body) > process.MaxJSONDepth {
			t.Fatalf("accepted a body that is not UTF-8 JSON within the limits: %q", body)
		}
		// Numbers as json.Number: JSON allows 2e400, a float64 does not
		// (a case the fuzzer found, kept in testdata/fuzz/FuzzDecode).
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("accepted a body encoding/json cannot read: %v", err)
		}
	})
}

// nesting is the deepest nesting of objects and arrays in a JSON text,
// counted the slow, obvious way, outside strings.
func nesting(body []byte) int {
	deepest, depth, inString := 0, 0, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}
