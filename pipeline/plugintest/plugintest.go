// Package plugintest runs the golden tests of a translator plugin, in this
// repository or in a module of its own: every raw message file of a
// corpus goes through the pipeline's pure steps (translate, rules,
// schemas, encoding), as the runner would take it, and what comes out is
// compared with an expected file written by hand. It needs no broker, and
// imports nothing of the runner.
//
// An expected file is JSON, at the raw file's relative path plus ".json":
//
//	{"outputs": [{"routing_key": "...", "cc": ["..."], "payload": {...}}],
//	 "error": "<class>",     // instead, for a message that is refused
//	 "dropped": "<class>"}   // instead, for a message dropped on purpose
//	                         // (true: dropped, whatever the class)
//
// Outputs compare as a multiset (a fan-out's order carries no meaning),
// each by its routing key, its CC routes (none when "cc" is left out) and
// its payload as JSON, but for the fields a test leaves out (a time the
// translator reads from the delivery, say). A difference is reported
// field by field.
package plugintest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// Pipeline is one pipeline's pure steps, as a config file describes them:
// its translator, rule files and schemas, with the plugins of a registry.
type Pipeline struct {
	proc *process.Processor
}

// Load loads the config file at path and builds its named pipeline (the
// first when name is empty) with the plugins of reg, or fails the test
// with the file, the line and the reason.
func Load(t testing.TB, path, name string, reg *translator.Registry) *Pipeline {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return build(t, cfg, name, reg)
}

// Parse is Load of a config's text.
func Parse(t testing.TB, text, name string, reg *translator.Registry) *Pipeline {
	t.Helper()
	cfg, err := config.Parse("the test's config", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return build(t, cfg, name, reg)
}

func build(t testing.TB, cfg *config.Config, name string, reg *translator.Registry) *Pipeline {
	t.Helper()
	proc, err := process.PipelineProcessor(cfg, name, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &Pipeline{proc: proc}
}

// Open is Load outside a Go test: it loads the config file at path (the
// embedded default when path is empty) and builds its named pipeline,
// returning what stops it. "pulsetranslator test" runs on it.
func Open(path, name string, reg *translator.Registry) (*Pipeline, error) {
	cfg, err := config.LoadOrDefault(path)
	if err != nil {
		return nil, err
	}
	proc, err := process.PipelineProcessor(cfg, name, reg)
	if err != nil {
		return nil, err
	}
	return &Pipeline{proc: proc}, nil
}

// Outcome is what became of one raw message: its outputs as they would
// be published, its drops, or its refusal.
type Outcome struct {
	Outputs []Output
	Dropped []Drop
	// Refusal is set when the message would be parked.
	Refusal *translator.Refusal
}

// Output is one output as it would be published.
type Output struct {
	// Exchange is the output exchange, RoutingKey and CC its routes.
	Exchange   string
	RoutingKey string
	CC         []string
	// Payload is the payload as a consumer decodes it from Body.
	Payload map[string]any
	// Body is the published body, in the output's envelope.
	Body []byte
	// WaitFor are the artifact URLs the readiness gate would check
	// before publishing it.
	WaitFor []string
}

// Drop is one output, or the whole message, dropped on purpose.
type Drop struct {
	// Class is the translator's class of drop, or rule:<name> for a rule.
	Class, Reason string
}

// Received is the time golden tests translate at, so that outcomes that
// read it do not change from run to run.
var Received = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TranslateFile runs a raw message as a file holds it (the body, with
// _meta.exchange and _meta.routing_key saying where it was published)
// through the pipeline's pure steps, at Received.
func (p *Pipeline) TranslateFile(body []byte) Outcome {
	return outcomeOf(p.proc.TranslateRaw(body, Received))
}

// Translate runs a raw body published to exchange with routingKey
// through the pipeline's pure steps, at Received.
func (p *Pipeline) Translate(exchange, routingKey string, body []byte) Outcome {
	return outcomeOf(p.proc.TranslateBody(exchange, routingKey, body, Received))
}

func outcomeOf(f process.FileOutcome) Outcome {
	o := Outcome{Refusal: f.Refusal}
	for i, r := range f.Published {
		var payload map[string]any
		_ = json.Unmarshal(PayloadOf(f.Bodies[i]), &payload)
		o.Outputs = append(o.Outputs, Output{Exchange: r.Output.Exchange, RoutingKey: r.RoutingKey, CC: r.CC, Payload: payload, Body: f.Bodies[i], WaitFor: r.WaitFor})
	}
	for _, d := range f.Dropped {
		o.Dropped = append(o.Dropped, Drop{Class: d.Class, Reason: d.Reason})
	}
	return o
}

// PayloadOf is the payload of a published body in either envelope: the
// "payload" of a mozillapulse body, or a bare body itself.
func PayloadOf(body []byte) []byte {
	var env struct {
		Payload json.RawMessage `json:"payload"`
		Meta    json.RawMessage `json:"_meta"`
	}
	if json.Unmarshal(body, &env) == nil && env.Meta != nil && env.Payload != nil {
		return env.Payload
	}
	return body
}

// Expected is the expected outcome of one raw message.
type Expected struct {
	Outputs []ExpectedOutput `json:"outputs"`
	// Error is the class of the expected refusal.
	Error string `json:"error"`
	// Dropped is true, or the class of the expected drop.
	Dropped DropExpectation `json:"dropped"`
}

// ExpectedOutput is one expected output.
type ExpectedOutput struct {
	RoutingKey string         `json:"routing_key"`
	CC         []string       `json:"cc"`
	Payload    map[string]any `json:"payload"`
}

// DropExpectation is the "dropped" of an expected file: true (any drop)
// or the class of the drop.
type DropExpectation struct {
	Expected bool
	Class    string
}

// UnmarshalJSON reads true, false or a class.
func (d *DropExpectation) UnmarshalJSON(data []byte) error {
	var b bool
	if err := json.Unmarshal(data, &b); err == nil {
		*d = DropExpectation{Expected: b}
		return nil
	}
	var class string
	if err := json.Unmarshal(data, &class); err != nil || class == "" {
		return errors.New(`"dropped" is true or the class of the drop, such as "ignored_platform"`)
	}
	*d = DropExpectation{Expected: true, Class: class}
	return nil
}

// Golden translates every raw message file under corpus with p and
// compares the outcome with its expected file under expected; ignore
// names payload fields left out of the comparison. It reports each
// difference, and fails when it compared no file or a corpus file has no
// expected file.
func Golden(t *testing.T, p *Pipeline, corpus, expected string, ignore ...string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(corpus, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(corpus, path)
		n++
		t.Run(rel, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ReadExpected(filepath.Join(expected, rel+".json"))
			if err != nil {
				t.Fatal(err)
			}
			for _, problem := range Compare(p.TranslateFile(body), want, ignore...) {
				t.Error(problem)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no raw message files under %s", corpus)
	}
}

// ReadExpected reads an expected file; unknown fields are an error.
func ReadExpected(path string) (Expected, error) {
	var e Expected
	data, err := os.ReadFile(path)
	if err != nil {
		return e, fmt.Errorf("no expected file (write it by hand from the raw message): %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// Compare says how got differs from want, one line per difference; none
// when they match. Payload fields named in ignore are not compared.
func Compare(got Outcome, want Expected, ignore ...string) []string {
	switch {
	case want.Error != "":
		if got.Refusal == nil || got.Refusal.Class != want.Error {
			return []string{fmt.Sprintf("want a refusal of class %s, got %s", want.Error, describe(got))}
		}
		return nil
	case got.Refusal != nil:
		return []string{fmt.Sprintf("refused: %s: %s", got.Refusal.Class, got.Refusal.Reason)}
	case want.Dropped.Expected:
		if len(got.Dropped) == 0 || len(got.Outputs) > 0 {
			return []string{"want a drop, got " + describe(got)}
		}
		if want.Dropped.Class != "" && got.Dropped[0].Class != want.Dropped.Class {
			return []string{fmt.Sprintf("want a drop of class %s, got one of class %s: %s", want.Dropped.Class, got.Dropped[0].Class, got.Dropped[0].Reason)}
		}
		return nil
	}
	gotOuts := make([]comparable, len(got.Outputs))
	for i, o := range got.Outputs {
		gotOuts[i] = comparableOf(o.RoutingKey, o.CC, o.Payload, ignore)
	}
	wantOuts := make([]comparable, len(want.Outputs))
	for i, o := range want.Outputs {
		// Through JSON, as the published payload is read.
		data, _ := json.Marshal(o.Payload)
		var payload map[string]any
		_ = json.Unmarshal(data, &payload)
		wantOuts[i] = comparableOf(o.RoutingKey, o.CC, payload, ignore)
	}
	return diffOutputs(gotOuts, wantOuts)
}

// comparable is an output as compared: its routes and payload.
type comparable struct {
	routingKey string
	cc         []string
	payload    map[string]any
	line       string
}

func comparableOf(routingKey string, cc []string, payload map[string]any, ignore []string) comparable {
	clean := make(map[string]any, len(payload))
	for k, v := range payload {
		if !slices.Contains(ignore, k) {
			clean[k] = v
		}
	}
	data, _ := json.Marshal(clean)
	return comparable{routingKey: routingKey, cc: cc, payload: clean, line: routingKey + " cc=" + strings.Join(cc, ",") + " " + string(data)}
}

// diffOutputs pairs equal outputs off, then says how each output left
// over differs from the one left over of the same routing key (field by
// field), or that it has none.
func diffOutputs(got, want []comparable) []string {
	var leftGot []comparable
	matched := make([]bool, len(want))
	for _, g := range got {
		i := slices.IndexFunc(want, func(w comparable) bool { return w.line == g.line })
		for i >= 0 && matched[i] {
			next := slices.IndexFunc(want[i+1:], func(w comparable) bool { return w.line == g.line })
			if next < 0 {
				i = -1
				break
			}
			i += 1 + next
		}
		if i < 0 {
			leftGot = append(leftGot, g)
			continue
		}
		matched[i] = true
	}
	var leftWant []comparable
	for i, w := range want {
		if !matched[i] {
			leftWant = append(leftWant, w)
		}
	}
	var problems []string
	for _, g := range leftGot {
		i := slices.IndexFunc(leftWant, func(w comparable) bool { return w.routingKey == g.routingKey })
		if i < 0 {
			problems = append(problems, "an output that is not expected: "+g.line)
			continue
		}
		w := leftWant[i]
		leftWant = slices.Delete(leftWant, i, i+1)
		problems = append(problems, fieldDiff(g, w)...)
	}
	for _, w := range leftWant {
		problems = append(problems, "an expected output that is missing: "+w.line)
	}
	sort.Strings(problems)
	return problems
}

// fieldDiff says how two outputs of one routing key differ.
func fieldDiff(got, want comparable) []string {
	var out []string
	at := "output " + got.routingKey
	if !reflect.DeepEqual(got.cc, want.cc) && (len(got.cc) > 0 || len(want.cc) > 0) {
		out = append(out, fmt.Sprintf("%s: cc %q, want %q", at, got.cc, want.cc))
	}
	keys := map[string]bool{}
	for k := range got.payload {
		keys[k] = true
	}
	for k := range want.payload {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		g, gok := got.payload[k]
		w, wok := want.payload[k]
		switch {
		case !gok:
			out = append(out, fmt.Sprintf("%s: payload.%s is missing, want %s", at, k, jsonText(w)))
		case !wok:
			out = append(out, fmt.Sprintf("%s: payload.%s is %s, not expected", at, k, jsonText(g)))
		case !reflect.DeepEqual(g, w):
			out = append(out, fmt.Sprintf("%s: payload.%s is %s, want %s", at, k, jsonText(g), jsonText(w)))
		}
	}
	return out
}

func jsonText(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

func describe(o Outcome) string {
	switch {
	case o.Refusal != nil:
		return "a refusal " + o.Refusal.Class + ": " + o.Refusal.Reason
	case len(o.Outputs) > 0:
		return fmt.Sprintf("%d outputs", len(o.Outputs))
	case len(o.Dropped) > 0:
		return "a drop of class " + o.Dropped[0].Class + ": " + o.Dropped[0].Reason
	}
	return "nothing"
}
