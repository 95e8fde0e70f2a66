package schemas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// corpusOutputs are the outputs of the buildbot corpus as the golden
// files hold them, payloads the schemas really see, with the timestamp the
// golden files leave out.
func corpusOutputs(t *testing.T) []translator.Output {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join("..", "translators", "buildbot", "testdata", "corpus", "expected", "*", "*.json"))
	var outs []translator.Output
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var expected struct {
			Outputs []struct {
				RoutingKey string         `json:"routing_key"`
				Payload    map[string]any `json:"payload"`
			} `json:"outputs"`
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if err := dec.Decode(&expected); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, o := range expected.Outputs {
			o.Payload["timestamp"] = "2015-11-04T12:00:00Z"
			outs = append(outs, translator.Output{RoutingKey: o.RoutingKey, Payload: o.Payload, Schema: "buildbot/build.json"})
		}
	}
	if len(outs) != 147 {
		t.Fatalf("%d golden outputs, want 147", len(outs))
	}
	return outs
}

// TestFastPathNeverMoreLenient compares the fast check with the full
// validator on every corpus output and on thousands of mutations of them
// (each field deleted, or set to a value of every JSON type): wherever the
// fast check says valid, the full validator must agree. It also checks the
// fast path does answer for the valid corpus outputs, or it would be no
// faster.
func TestFastPathNeverMoreLenient(t *testing.T) {
	set, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range set.Names() {
		if set.fast[name] == nil {
			t.Errorf("%s has no fast path; it uses a keyword outside the subset", name)
		}
	}
	replacements := []any{nil, true, "", "x", "20151104123456", json.Number("-1"), json.Number("1.5"), json.Number("42"), 1e300, []any{}, []any{1.0}, map[string]any{}}
	checked, fastValid := 0, 0
	check := func(schema string, payload map[string]any) {
		checked++
		if !set.fast[schema].valid(payload) {
			return
		}
		fastValid++
		if err := set.byName[schema].Validate(payload); err != nil {
			t.Fatalf("the fast path accepts what %s refuses: %v\npayload: %v", schema, err, payload)
		}
	}
	for _, o := range corpusOutputs(t) {
		if !set.fast[o.Schema].valid(o.Payload) {
			t.Errorf("the fast path is not sure of a valid corpus output (%s, %s)", o.Schema, o.RoutingKey)
		}
		for field := range o.Payload {
			mutated := clone(o.Payload)
			delete(mutated, field)
			check(o.Schema, mutated)
			for _, r := range replacements {
				mutated := clone(o.Payload)
				mutated[field] = r
				check(o.Schema, mutated)
			}
		}
	}
	if fastValid == checked || fastValid == 0 {
		t.Errorf("%d of %d mutations passed the fast path; the mutations do not exercise it", fastValid, checked)
	}
	t.Logf("%d mutations checked, %d passed the fast path and the full validator agreed on each", checked, fastValid)
}

func clone(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestValidateFallsBackForTheReason checks an invalid payload still gets
// the full validator's reason.
func TestValidateFallsBackForTheReason(t *testing.T) {
	set, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	err = set.Validate("buildbot/build.json", map[string]any{"buildid": "yesterday"})
	if err == nil || !strings.Contains(err.Error(), "/buildid") {
		t.Fatalf("error %v, want one naming /buildid", err)
	}
}

// TestFastRequired covers what the shipped schemas do not: required names
// listed twice, and required names with no schema of their own under
// properties. A missing one is never taken as valid.
func TestFastRequired(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(`{"type": "object", "required": ["a", "b", "a", "c"],
		"properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "d": {"type": "string"}}}`), &doc); err != nil {
		t.Fatal(err)
	}
	f := compileFast(doc)
	if f == nil {
		t.Fatal("no fast path")
	}
	cases := []struct {
		payload map[string]any
		valid   bool
	}{
		{map[string]any{"a": "x", "b": 1, "c": nil}, true},
		{map[string]any{"a": "x", "b": 1, "c": nil, "d": "y", "e": 5}, true},
		{map[string]any{"b": 1, "c": nil, "d": "y"}, false},
		{map[string]any{"a": "x", "c": nil}, false},
		{map[string]any{"a": "x", "b": 1}, false},
		{map[string]any{"a": "x", "b": 1, "d": "y"}, false},
		{map[string]any{"a": 1, "b": 1, "c": nil}, false},
	}
	for _, c := range cases {
		if got := f.valid(c.payload); got != c.valid {
			t.Errorf("valid(%v) = %v, want %v", c.payload, got, c.valid)
		}
	}
}

// BenchmarkValidate is the cost of validating the corpus' outputs with
// the fast path in front (what Validate does) and with the full
// validator alone, per output: the figure that keeps the fast path.
//
//	go test ./schemas -run '^$' -bench Validate -benchmem -count 5
func BenchmarkValidate(b *testing.B) {
	set, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	outs := corpusOutputs(&testing.T{})
	if len(outs) < 40 {
		b.Fatalf("%d corpus outputs", len(outs))
	}
	b.Run("fast path", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			o := outs[i%len(outs)]
			if err := set.Validate(o.Schema, o.Payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonschema alone", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			o := outs[i%len(outs)]
			if err := set.byName[o.Schema].Validate(o.Payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFastPathComparesExactly: near 2^53, where doubles round, the fast
// path is not sure of a number it cannot compare exactly, so the full
// validator decides as it compares exact values; and a schema whose bound
// a double does not hold exactly gets no fast path.
func TestFastPathComparesExactly(t *testing.T) {
	set, err := Compile(fstest.MapFS{
		"max.json":   {Data: []byte(`{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {"n": {"type": "integer", "maximum": 9007199254740992}}}`)},
		"frac.json":  {Data: []byte(`{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {"n": {"type": "number", "maximum": 0.3}}}`)},
		"tight.json": {Data: []byte(`{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {"n": {"type": "number", "maximum": 0.30000000000000004}}}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		schema string
		n      any
		valid  bool
	}{
		{"max.json", int64(9007199254740992), true},
		{"max.json", int64(9007199254740993), false},
		{"max.json", uint64(9007199254740993), false},
		{"max.json", int(9007199254740993), false},
		{"max.json", json.Number("9007199254740993"), false},
		{"max.json", json.Number("9007199254740992"), true},
		{"frac.json", json.Number("0.3"), true},
		{"frac.json", json.Number("0.30000000000000001"), false},
		{"frac.json", json.Number("1.0000000000000001"), false},
	} {
		err := set.Validate(tc.schema, map[string]any{"n": tc.n})
		if (err == nil) != tc.valid {
			t.Errorf("%s, n = %v (%T): %v; want valid %v", tc.schema, tc.n, tc.n, err, tc.valid)
		}
	}
	if set.fast["tight.json"] != nil && set.fast["tight.json"].properties["n"].schema != nil {
		t.Error("a bound of 17 significant digits got a fast path")
	}
}
