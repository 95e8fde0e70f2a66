package process_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

const okSchema = `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["n"]}`

// describing is a translator that says it publishes with schema.
type describing struct{ schema string }

func (d describing) Translate(translator.Message) ([]translator.Output, error) {
	return []translator.Output{{RoutingKey: "a.b", Payload: map[string]any{"n": 1}, Schema: d.schema}}, nil
}

func (d describing) Describe() []translator.OutputDoc {
	return []translator.OutputDoc{{Name: "thing", Schema: d.schema}}
}

func plugin(name, schema string, schemas, rules fstest.MapFS) translator.Spec {
	spec := translator.Spec{Name: name, New: func(translator.Params) (translator.Translator, error) { return describing{schema}, nil }}
	if schemas != nil {
		spec.Schemas = schemas
	}
	if rules != nil {
		spec.Rules = rules
	}
	return spec
}

func pipelineOf(t *testing.T, translatorName string, ruleFiles ...string) config.PipelineConfig {
	t.Helper()
	var rules string
	if len(ruleFiles) > 0 {
		rules = "\n    rules: [" + strings.Join(ruleFiles, ", ") + "]"
	}
	cfg, err := config.Parse("test.yaml", []byte(`client_id: t
pipelines:
  - name: p
    translator: `+translatorName+`
    bindings: [{exchange: exchange/x/, routing_keys: ['#']}]
    outputs: [{exchange: out}]`+rules+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Pipelines[0]
}

// TestPluginsShipTheirData: builtin: rule files and schema names resolve
// across every registered plugin; what no plugin ships, or two ship,
// stops start-up naming the plugins.
func TestPluginsShipTheirData(t *testing.T) {
	t.Run("across plugins", func(t *testing.T) {
		var reg translator.Registry
		// b publishes with a's schema and names a's rule file.
		reg.Register(plugin("a", "a/thing.json", fstest.MapFS{"a/thing.json": {Data: []byte(okSchema)}},
			fstest.MapFS{"a.yaml": {Data: []byte("rules:\n  - name: cc\n    cc: ['\"route.n\"']\n")}}))
		reg.Register(plugin("b", "a/thing.json", nil, nil))
		shipped, err := process.Ship(&reg)
		if err != nil {
			t.Fatal(err)
		}
		if owner := shipped.SchemaOwner("a/thing.json"); owner != "a" {
			t.Errorf("SchemaOwner = %q", owner)
		}
		proc, err := process.NewProcessor(pipelineOf(t, "b", "builtin:a.yaml"), &reg, shipped)
		if err != nil {
			t.Fatal(err)
		}
		_, outcome, err := proc.ProcessBody("exchange/x/", "k", nil, []byte(`{}`), time.Now())
		if err != nil || len(outcome.Published) != 1 || strings.Join(outcome.Published[0].CC, ",") != "route.n" {
			t.Fatalf("outcome %+v, %v; want one output with a's CC rule applied", outcome, err)
		}
	})
	for _, tc := range []struct {
		name    string
		plugins []translator.Spec
		rules   []string
		want    []string // in the error
	}{
		{"schema no plugin ships", []translator.Spec{plugin("a", "a/missing.json", fstest.MapFS{"a/thing.json": {Data: []byte(okSchema)}}, nil)}, nil,
			[]string{"a plugin", "a/missing.json", "no plugin ships", "a/thing.json"}},
		{"schema two plugins ship", []translator.Spec{
			plugin("a", "x.json", fstest.MapFS{"x.json": {Data: []byte(okSchema)}}, nil),
			plugin("b", "x.json", fstest.MapFS{"x.json": {Data: []byte(okSchema)}}, nil)}, nil,
			[]string{"plugins a and b both ship the schema x.json"}},
		{"rule file two plugins ship", []translator.Spec{
			plugin("a", "", nil, fstest.MapFS{"r.yaml": {Data: []byte("rules: []\n")}}),
			plugin("b", "", nil, fstest.MapFS{"r.yaml": {Data: []byte("rules: []\n")}})}, nil,
			[]string{"plugins a and b both ship the rule file r.yaml"}},
		{"rule file no plugin ships", []translator.Spec{plugin("a", "", nil, fstest.MapFS{"r.yaml": {Data: []byte("rules: []\n")}})},
			[]string{"builtin:other.yaml"},
			[]string{"builtin:other.yaml", "no plugin ships", "builtin:r.yaml (a)"}},
		{"schema that does not compile", []translator.Spec{plugin("a", "", fstest.MapFS{"bad.json": {Data: []byte(`{"type": 7}`)}}, nil)}, nil,
			[]string{"plugin a", "bad.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reg translator.Registry
			for _, p := range tc.plugins {
				if err := reg.Register(p); err != nil {
					t.Fatal(err)
				}
			}
			shipped, err := process.Ship(&reg)
			if err == nil {
				_, err = process.NewProcessor(pipelineOf(t, "a", tc.rules...), &reg, shipped)
			}
			if err == nil {
				t.Fatal("start-up succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
