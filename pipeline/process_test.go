package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// processor builds a pipeline around translate with the rules in ruleYAML.
func processor(t *testing.T, translate translator.Func, ruleYAML string) *pipeline.Processor {
	t.Helper()
	reg := &translator.Registry{}
	if err := reg.Register(translator.Spec{Name: "fake", New: func(translator.Params) (translator.Translator, error) { return translate, nil }}); err != nil {
		t.Fatal(err)
	}
	var ruleFiles []string
	if ruleYAML != "" {
		path := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(path, []byte(ruleYAML), 0o644); err != nil {
			t.Fatal(err)
		}
		ruleFiles = []string{path}
	}
	sch, err := schemas.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewProcessor(pipeline.PipelineConfig{
		Name: "p", Translator: "fake", Rules: ruleFiles,
		Outputs: []pipeline.OutputConfig{{Name: "out", Exchange: "exchange/me/out", Envelope: pipeline.EnvelopeBare}},
	}, reg, sch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// build returns a payload that satisfies buildbot/build.json.
func build() map[string]any {
	p := map[string]any{"key": "build.x.1.log_uploaded", "platform": "linux", "locale": "en-US", "tree": "central",
		"buildtype": "opt", "timestamp": "2015-11-04T12:00:00Z", "tags": []any{}}
	for _, f := range []string{"job_number", "buildid", "builddate", "build_number", "previous_buildid", "status", "buildurl",
		"logurl", "testsurl", "test_packages_url", "symbols_url", "release", "buildername", "slave", "repack", "revision", "product", "version"} {
		p[f] = nil
	}
	return p
}

func oneBuild(msg translator.Message) ([]translator.Output, error) {
	return []translator.Output{{RoutingKey: "build.central", Payload: build(), Schema: "buildbot/build.json"},
		{RoutingKey: "build.other", Payload: build(), Schema: "buildbot/build.json"}}, nil
}

func TestProcessIDsAreDeterministic(t *testing.T) {
	p := processor(t, oneBuild, "")
	msg := translator.Message{Exchange: "e", RoutingKey: "k", Body: []byte(`{}`), Received: time.Now()}
	a, err := p.Process(msg)
	if err != nil {
		t.Fatal(err)
	}
	msg.Received = msg.Received.Add(time.Hour)
	b, _ := p.Process(msg)
	if a.Published[0].ID != b.Published[0].ID || a.Published[0].ID == a.Published[1].ID {
		t.Errorf("ids %s %s / %s: want equal for equal inputs, distinct per output", a.Published[0].ID, b.Published[0].ID, a.Published[1].ID)
	}
	msg.Body = []byte(`{"other": 1}`)
	c, _ := p.Process(msg)
	if c.Published[0].ID == a.Published[0].ID {
		t.Error("a different input got the same id")
	}
}

func TestProcessRefusesSchemaViolation(t *testing.T) {
	p := processor(t, oneBuild, "rules:\n  - name: break-it\n    set: {platform: 'nil'}\n")
	_, err := p.Process(translator.Message{Body: []byte(`{}`)})
	var r *translator.Refusal
	if !errors.As(err, &r) || r.Class != pipeline.ClassSchema {
		t.Fatalf("got %v, want a schema refusal", err)
	}
}

func TestProcessRuleDropsOneOutput(t *testing.T) {
	p := processor(t, oneBuild, "rules:\n  - name: no-other\n    drop_when: routing_key == \"build.other\"\n")
	out, err := p.Process(translator.Message{Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Published) != 1 || len(out.Dropped) != 1 || out.Dropped[0].Rule != "no-other" {
		t.Fatalf("outcome %+v", out)
	}
}

func TestProcessClassifiesTranslatorErrors(t *testing.T) {
	cases := map[string]translator.Func{
		pipeline.ClassInternal:    func(translator.Message) ([]translator.Output, error) { return nil, errors.New("boom") },
		pipeline.ClassEmptyResult: func(translator.Message) ([]translator.Output, error) { return nil, nil },
		pipeline.ClassUnknownTo: func(translator.Message) ([]translator.Output, error) {
			return []translator.Output{{RoutingKey: "k", Payload: build(), Schema: "buildbot/build.json", To: "nowhere"}}, nil
		},
		pipeline.ClassBadRoute: func(translator.Message) ([]translator.Output, error) {
			return []translator.Output{{RoutingKey: "", Payload: build(), Schema: "buildbot/build.json"}}, nil
		},
	}
	for class, fn := range cases {
		t.Run(class, func(t *testing.T) {
			_, err := processor(t, fn, "").Process(translator.Message{Body: []byte(`{}`)})
			var r *translator.Refusal
			if !errors.As(err, &r) || r.Class != class {
				t.Fatalf("got %v, want class %s", err, class)
			}
		})
	}
}

// TestProcessRefusesUncheckableArtifactURL: an output whose wait_for gives
// a URL the gate cannot check (not http or https, or no host) refuses the
// message, also when an earlier output of it waits for a good one.
func TestProcessRefusesUncheckableArtifactURL(t *testing.T) {
	const rules = "rules:\n  - name: wait-for-log\n    wait_for: ['payload.logurl']\n"
	withLogs := func(urls ...string) translator.Func {
		return func(translator.Message) ([]translator.Output, error) {
			var outs []translator.Output
			for i, u := range urls {
				p := build()
				p["logurl"] = u
				outs = append(outs, translator.Output{RoutingKey: "build.locale" + string(rune('a'+i)), Payload: p, Schema: "buildbot/build.json"})
			}
			return outs, nil
		}
	}
	good := "https://archive.example/logs/build.txt.gz"
	for name, urls := range map[string][]string{
		"ftp":          {"ftp://archive.example/log.txt"},
		"no host":      {"http:///log.txt"},
		"after a good": {good, good, "file:///etc/passwd"},
		"not a URL":    {good, "http://[::1"},
	} {
		_, err := processor(t, withLogs(urls...), rules).Process(translator.Message{Body: []byte(`{}`)})
		var r *translator.Refusal
		if !errors.As(err, &r) || r.Class != pipeline.ClassBadArtifactURL {
			t.Errorf("%s: got %v, want a %s refusal", name, err, pipeline.ClassBadArtifactURL)
		}
	}
	out, err := processor(t, withLogs(good, good, good), rules).Process(translator.Message{Body: []byte(`{}`)})
	if err != nil || len(out.Published) != 3 || len(out.Published[2].WaitFor) != 1 {
		t.Fatalf("three outputs waiting for one good URL: %+v, %v", out, err)
	}
}
