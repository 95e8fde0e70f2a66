package pipeline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func TestDecodeRefusals(t *testing.T) {
	cases := []struct {
		name  string
		body  []byte
		class string
	}{
		{"not JSON", []byte(`{"a": `), pipeline.ClassMalformed},
		{"not UTF-8", []byte("{\"a\": \"\xff\"}"), pipeline.ClassNotUTF8},
		{"too deep", []byte(strings.Repeat("[", 65) + strings.Repeat("]", 65)), pipeline.ClassTooDeep},
		{"too large", []byte(`"` + strings.Repeat("x", pipeline.MaxBodyBytes) + `"`), pipeline.ClassTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pipeline.Decode("e", "k", c.body, time.Now())
			var r *translator.Refusal
			if !errors.As(err, &r) || r.Class != c.class || r.Reason == "" {
				t.Fatalf("got %v, want a %s refusal with a reason", err, c.class)
			}
		})
	}
	deep := []byte(strings.Repeat("[", 64) + `"[[[[ in a string"` + strings.Repeat("]", 64))
	if _, err := pipeline.Decode("e", "k", deep, time.Now()); err != nil {
		t.Errorf("64 levels with brackets inside a string: %v", err)
	}
}
