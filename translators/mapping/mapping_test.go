package mapping_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/plugintest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/translators/mapping"
)

const hgConfig = `client_id: x
pipelines:
  - name: hg
    translator: mapping
    bindings: [{exchange: exchange/hgpushes/v2, routing_keys: ['#']}]
    outputs: [{exchange: hg/normalized}]
    rules: [builtin:hgpushes.yaml]
`

// TestHgPushesGolden runs the hg.mozilla.org messages of testdata (written
// after the format hg.mozilla.org documents for exchange/hgpushes/v2)
// through a whole pipeline processor (mapping, rules, schemas) and compares
// every outcome with testdata/hgpushes.expected.json, checked by hand
// against the raw messages.
func TestHgPushesGolden(t *testing.T) {
	p := plugintest.Parse(t, hgConfig, "", translator.Default)
	data, err := os.ReadFile(filepath.Join("testdata", "hgpushes.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string][]map[string]any
	if err := json.Unmarshal(data, &expected); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join("testdata", "hgpushes", "*.json"))
	if len(paths) != len(expected) {
		t.Fatalf("%d raw messages, %d expected outcomes", len(paths), len(expected))
	}
	for _, path := range paths {
		body, _ := os.ReadFile(path)
		var meta struct {
			Meta struct {
				RoutingKey string `json:"routing_key"`
			} `json:"_meta"`
		}
		_ = json.Unmarshal(body, &meta)
		outcome := p.Translate("exchange/hgpushes/v2", meta.Meta.RoutingKey, body)
		if outcome.Refusal != nil {
			t.Errorf("%s: refused: %v", path, outcome.Refusal)
			continue
		}
		var got []map[string]any
		for _, o := range outcome.Outputs {
			got = append(got, map[string]any{"routing_key": o.RoutingKey, "cc": o.CC, "payload": o.Payload})
		}
		for _, d := range outcome.Dropped {
			got = append(got, map[string]any{"dropped": map[string]any{"reason": d.Reason}})
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(expected[filepath.Base(path)])
		var g, w any
		_ = json.Unmarshal(gotJSON, &g)
		_ = json.Unmarshal(wantJSON, &w)
		if a, b := mustJSON(g), mustJSON(w); a != b {
			t.Errorf("%s:\n got %s\nwant %s", filepath.Base(path), a, b)
		}
	}
}

func mustJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// TestMappingErrors checks a broken mapping table stops start-up naming
// the output and the field, and unmatched: refuse refuses.
func TestMappingErrors(t *testing.T) {
	cases := []struct{ name, table, want string }{
		{"no table", ``, `no "mapping" table`},
		{"bad expression", `
mapping:
  outputs:
    - {name: a, schema: s.json, routing_key: [{name: k, summary: s, value: 'body.x +'}], payload: {}}`, "mapping.outputs[0] (a): routing_key[0].value"},
		{"constant and value", `
mapping:
  outputs:
    - {name: a, schema: s.json, routing_key: [{name: k, summary: s, value: 'body.x', constant: c}]}`, "give constant or value"},
		{"unknown field", `
mapping:
  outputs:
    - {name: a, schema: s.json, routing_key: [{name: k, summary: s, constant: c}], payloads: {}}`, "unknown field"},
		{"bad unmatched", `
mapping:
  unmatched: ignore
  outputs:
    - {name: a, schema: s.json, routing_key: [{name: k, summary: s, constant: c}]}`, "use drop or refuse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := rules.Parse("m.yaml", []byte("tables:"+indent(c.table)+"\n"))
			if err != nil && c.table != "" {
				t.Fatal(err)
			}
			tables := map[string]any{}
			if f != nil && f.Tables != nil {
				tables = f.Tables
			}
			_, err = mapping.New(translator.Params{Pipeline: "p", Tables: tables})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}

	tr := newMapping(t, `tables:
  mapping:
    unmatched: refuse
    outputs:
      - {name: a, when: 'body.kind == "a"', schema: s.json, routing_key: [{name: k, summary: s, constant: a}]}
`)
	_, err := tr.Translate(translator.Message{Body: []byte(`{"kind": "b"}`)})
	var r *translator.Refusal
	if !errors.As(err, &r) || r.Class != "unmatched" {
		t.Errorf("unmatched with refuse: %v", err)
	}
}

// TestMappingMembership: a when testing membership in a list of strings
// matches strings and passes over values of other types (expr's own set of
// strings would fail on a number), as the rules engine's expressions do.
func TestMappingMembership(t *testing.T) {
	tr := newMapping(t, `tables:
  mapping:
    outputs:
      - {name: a, when: 'body.kind in ["a", "b"]', schema: s.json, routing_key: [{name: k, summary: s, constant: a}], payload: {kind: body.kind}}
`)
	for body, matches := range map[string]bool{`{"kind": "b"}`: true, `{"kind": "c"}`: false, `{"kind": 7}`: false, `{"kind": true}`: false, `{}`: false} {
		outs, err := tr.Translate(translator.Message{Body: []byte(body)})
		var d *translator.Dropped
		switch {
		case matches && (err != nil || len(outs) != 1):
			t.Errorf("%s: %v, %v; want one output", body, outs, err)
		case !matches && !errors.As(err, &d):
			t.Errorf("%s: %v, %v; want it dropped as unmatched", body, outs, err)
		}
	}
}

// newMapping builds the mapping translator of a rule file's text.
func newMapping(t *testing.T, ruleFile string) translator.Translator {
	t.Helper()
	f, err := rules.Parse("m.yaml", []byte(ruleFile))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := mapping.New(translator.Params{Pipeline: "p", Tables: f.Tables})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func indent(s string) string {
	if s == "" {
		return " {}"
	}
	return strings.ReplaceAll(s, "\n", "\n  ")
}
