package process_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// processor builds a pipeline around translate with the rules in ruleYAML.
func processor(t *testing.T, translate translator.Func, ruleYAML string) *process.Processor {
	t.Helper()
	return limitedProcessor(t, translate, ruleYAML, config.LimitsConfig{})
}

// limitedProcessor is processor with the given limits (0: the default).
func limitedProcessor(t *testing.T, translate translator.Func, ruleYAML string, limits config.LimitsConfig) *process.Processor {
	t.Helper()
	reg := &translator.Registry{}
	if err := reg.Register(translator.Spec{Name: "fake", Schemas: schemas.Files, New: func(translator.Params) (translator.Translator, error) { return translate, nil }}); err != nil {
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
	shipped, err := process.Ship(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := process.NewProcessor(config.PipelineConfig{
		Name: "p", Translator: "fake", Rules: ruleFiles, Limits: limits,
		Outputs: []config.OutputConfig{{Name: "out", Exchange: "exchange/me/out", Envelope: config.EnvelopeBare}},
	}, reg, shipped)
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
	if !errors.As(err, &r) || r.Class != pulse.ClassSchema {
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
		pulse.ClassInternal:    func(translator.Message) ([]translator.Output, error) { return nil, errors.New("boom") },
		pulse.ClassEmptyResult: func(translator.Message) ([]translator.Output, error) { return nil, nil },
		pulse.ClassUnknownTo: func(translator.Message) ([]translator.Output, error) {
			return []translator.Output{{RoutingKey: "k", Payload: build(), Schema: "buildbot/build.json", To: "nowhere"}}, nil
		},
		pulse.ClassBadRoute: func(translator.Message) ([]translator.Output, error) {
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
// a URL the gate cannot check (not http or https, no host, too long)
// refuses the message, also when an earlier output of it waits for a good
// one. Where a URL may lead (wait.check.allow, private addresses) is the
// gate's to decide: see the runner's TestArtifactURLPolicyParks.
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
		"too long":     {good + "?" + strings.Repeat("x", 4096)},
	} {
		_, err := processor(t, withLogs(urls...), rules).Process(translator.Message{Body: []byte(`{}`)})
		var r *translator.Refusal
		if !errors.As(err, &r) || r.Class != pulse.ClassBadArtifactURL {
			t.Errorf("%s: got %v, want a %s refusal", name, err, pulse.ClassBadArtifactURL)
		}
	}
	out, err := processor(t, withLogs(good, good, good), rules).Process(translator.Message{Body: []byte(`{}`)})
	if err != nil || len(out.Published) != 3 || len(out.Published[2].WaitFor) != 1 {
		t.Fatalf("three outputs waiting for one good URL: %+v, %v", out, err)
	}
}

// builds returns a translator of n build outputs, each with extra set
// on its payload.
func builds(n int, extra map[string]any) translator.Func {
	return func(translator.Message) ([]translator.Output, error) {
		outs := make([]translator.Output, n)
		for i := range outs {
			p := build()
			for k, v := range extra {
				p[k] = v
			}
			outs[i] = translator.Output{RoutingKey: fmt.Sprintf("build.central.%d", i), Payload: p, Schema: "buildbot/build.json"}
		}
		return outs, nil
	}
}

func refusalClass(err error) string {
	var r *translator.Refusal
	if errors.As(err, &r) {
		return r.Class
	}
	return fmt.Sprintf("not a refusal: %v", err)
}

// TestLimitsOfOneInput: an input past limits.max_outputs is refused as
// too_many_outputs, and one whose bodies add up past max_output_bytes as
// outputs_too_large; at the limits, both pass.
func TestLimitsOfOneInput(t *testing.T) {
	limits := config.LimitsConfig{MaxOutputs: 3, MaxOutputBytes: 2000}
	msg := translator.Message{Body: []byte(`{}`)}
	if _, err := limitedProcessor(t, builds(4, nil), "", limits).Process(msg); refusalClass(err) != pulse.ClassTooManyOutputs {
		t.Errorf("4 outputs past a limit of 3: %s, want %s", refusalClass(err), pulse.ClassTooManyOutputs)
	}
	proc := limitedProcessor(t, builds(3, nil), "", limits)
	outcome, err := proc.Process(msg)
	if err != nil || len(outcome.Published) != 3 {
		t.Fatalf("3 outputs at a limit of 3: %d, %v", len(outcome.Published), err)
	}
	bodies, err := proc.Encode(outcome.Published, time.Now())
	total := 0
	for _, b := range bodies {
		total += len(b)
	}
	if err != nil || total > 2000 {
		t.Fatalf("3 small bodies (%d bytes) within 2000: %v", total, err)
	}
	big := limitedProcessor(t, builds(3, map[string]any{"slave": strings.Repeat("x", 600)}), "", limits)
	outcome, err = big.Process(msg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = big.Encode(outcome.Published, time.Now())
	if refusalClass(err) != pulse.ClassOutputsTooLarge || !strings.Contains(err.Error(), "at output 2 of 3") {
		t.Errorf("3 bodies of over 1000 bytes past 2000: %v, want %s at the second", err, pulse.ClassOutputsTooLarge)
	}
}

// TestUnsafeNumbersAreRefused: an integer beyond ±2^53 or a number beyond
// a double's range is refused as unsafe_number, naming where it is; the
// largest safe integers and ordinary floats pass.
func TestUnsafeNumbersAreRefused(t *testing.T) {
	msg := translator.Message{Body: []byte(`{}`)}
	encode := func(v any) error {
		proc := processor(t, builds(1, map[string]any{"build_number": v}), "")
		outcome, err := proc.Process(msg)
		if err != nil {
			return err
		}
		_, err = proc.Encode(outcome.Published, time.Now())
		return err
	}
	for _, v := range []any{json.Number("9007199254740993"), json.Number("-9007199254740993"), json.Number("1e400"),
		json.Number("123456789012345678901234567890"), int64(1) << 60, -(int64(1) << 60), uint64(1) << 60, uint(1) << 60, uint64(math.MaxUint64)} {
		err := encode(v)
		if refusalClass(err) != pulse.ClassUnsafeNumber || !strings.Contains(err.Error(), "build_number") {
			t.Errorf("%v: %v, want %s naming build_number", v, err, pulse.ClassUnsafeNumber)
		}
	}
	for _, v := range []any{json.Number("9007199254740992"), json.Number("-9007199254740992"), json.Number("1234567890123456"), int64(1) << 53, uint64(1) << 53, uint(7), uint32(math.MaxUint32), int32(-5), int8(-3), uint8(200)} {
		if err := encode(v); err != nil {
			t.Errorf("%v: %v, want it published", v, err)
		}
	}
	// Anywhere in a payload, by its path; floats a double holds pass.
	body := func(payload map[string]any) error {
		_, err := process.Body(process.Routed{Output: &config.OutputConfig{Envelope: config.EnvelopeBare}, Payload: payload}, time.Now())
		return err
	}
	err := body(map[string]any{"a": map[string]any{"b": []any{1, json.Number("-1E999")}}})
	var unsafe *process.UnsafeNumberError
	if !errors.As(err, &unsafe) || unsafe.Path != "a.b[1]" {
		t.Errorf("a nested unsafe number: %v, want its path a.b[1]", err)
	}
	if err := body(map[string]any{"a": []any{json.Number("1.5e300"), json.Number("0.1"), 3.25, json.Number("-0")}}); err != nil {
		t.Errorf("floats a double holds: %v", err)
	}
	// Integers of every size encode as encoding/json encodes them.
	small := map[string]any{"a": int8(-3), "b": uint8(200), "c": int16(-300), "d": uint16(60000), "e": int32(-5), "f": uint32(math.MaxUint32), "g": uint(7), "h": uint64(1) << 53}
	got, err := process.Body(process.Routed{Output: &config.OutputConfig{Envelope: config.EnvelopeBare}, Payload: small}, time.Now())
	want, _ := json.Marshal(small)
	if err != nil || string(got) != string(want) {
		t.Errorf("integers of every size: %s, %v; want %s", got, err, want)
	}
}

// TestProcessBoundsRoutes: an output with at most 64 CC routes of 1 to
// 255 bytes each is published; 65 routes, a route of 256 bytes, an empty
// route or a routing key of 256 bytes refuse the message
// (bad_routing_key), whether the translator or a rule added them, so that
// no output's CC header can grow past what a frame holds.
func TestProcessBoundsRoutes(t *testing.T) {
	withCC := func(key string, cc ...string) translator.Func {
		return func(translator.Message) ([]translator.Output, error) {
			return []translator.Output{{RoutingKey: key, CC: cc, Payload: build(), Schema: "buildbot/build.json"}}, nil
		}
	}
	routes := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			r := fmt.Sprintf("route.%d.", i)
			out[i] = r + strings.Repeat("x", size-len(r))
		}
		return out
	}
	ok := []translator.Func{withCC("build.x", routes(64, 255)...), withCC(strings.Repeat("k", 255), "route.a")}
	for i, fn := range ok {
		out, err := processor(t, fn, "").Process(translator.Message{Body: []byte(`{}`)})
		if err != nil || len(out.Published) != 1 {
			t.Errorf("case %d within the bounds: %+v, %v", i, out, err)
		}
	}
	for name, fn := range map[string]translator.Func{
		"65 CC routes":         withCC("build.x", routes(65, 20)...),
		"a CC route of 256":    withCC("build.x", routes(1, 256)...),
		"an empty CC route":    withCC("build.x", ""),
		"a routing key of 256": withCC(strings.Repeat("k", 256)),
	} {
		_, err := processor(t, fn, "").Process(translator.Message{Body: []byte(`{}`)})
		if refusalClass(err) != pulse.ClassBadRoute {
			t.Errorf("%s: %v; want %s", name, err, pulse.ClassBadRoute)
		}
	}
	// A rule that adds the 65th route is refused as well.
	rules := "rules:\n  - name: one-more\n    cc: ['\"route.extra\"']\n"
	_, err := processor(t, withCC("build.x", routes(64, 20)...), rules).Process(translator.Message{Body: []byte(`{}`)})
	if refusalClass(err) != pulse.ClassBadRoute || !strings.Contains(err.Error(), "65 CC routes") {
		t.Errorf("64 routes and a rule's one more: %v; want %s naming 65", err, pulse.ClassBadRoute)
	}
}

// TestValidateAfterAChange: a payload changed after the rules (as the
// readiness gate marks an unconfirmed one) is validated again, and one
// its schema no longer takes refuses the message.
func TestValidateAfterAChange(t *testing.T) {
	p := processor(t, oneBuild, "")
	out, err := p.Process(translator.Message{Body: []byte(`{}`)})
	if err != nil || len(out.Published) != 2 {
		t.Fatalf("%+v, %v", out, err)
	}
	if err := p.Validate(out.Published); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	out.Published[1].Payload["platform"] = 42
	if err := p.Validate(out.Published); refusalClass(err) != pulse.ClassSchema || !strings.Contains(err.Error(), "build.other") {
		t.Errorf("a payload changed to break its schema: %v; want %s naming the output", err, pulse.ClassSchema)
	}
}
