// Package plugintest runs the golden tests of a translator plugin, in this
// repository or in a module of its own: every raw message file of a
// corpus goes through the pipeline's pure steps, as the runner would take
// it, and what comes out is compared with an expected file written by
// hand. It needs no broker, and imports nothing of the runner.
//
// An expected file is JSON, at the raw file's relative path plus ".json":
//
//	{"outputs": [{"routing_key": "...", "cc": ["..."], "payload": {...}}],
//	 "error": "<class>",     // instead, for a message that is refused
//	 "dropped": true}        // instead, for a message dropped on purpose
//
// Outputs compare as a multiset (a fan-out's order carries no meaning),
// each by its routing key, its CC routes (none when "cc" is left out) and
// its payload as JSON, but for the fields a test leaves out (a time the
// translator reads from the delivery, say).
package plugintest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// Processor loads the config file at path and builds the processor of its
// named pipeline (the first when name is empty) with the plugins of reg,
// or fails the test with the file, the line and the reason.
func Processor(t testing.TB, path, name string, reg *translator.Registry) *pipeline.Processor {
	t.Helper()
	cfg, err := pipeline.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := pipeline.PipelineProcessor(cfg, name, reg)
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// Expected is the expected outcome of one raw message.
type Expected struct {
	Outputs []ExpectedOutput `json:"outputs"`
	Error   string           `json:"error"`
	Dropped bool             `json:"dropped"`
}

// ExpectedOutput is one expected output.
type ExpectedOutput struct {
	RoutingKey string         `json:"routing_key"`
	CC         []string       `json:"cc"`
	Payload    map[string]any `json:"payload"`
}

// Received is the time golden tests translate at, so that outcomes that
// read it do not change from run to run.
var Received = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Golden translates every raw message file under corpus and compares the
// outcome with its expected file under expected; ignore names payload
// fields left out of the comparison. It reports each difference, and how
// many files it compared; a corpus file without an expected file fails.
func Golden(t *testing.T, proc *pipeline.Processor, corpus, expected string, ignore ...string) {
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
			want, err := readExpected(filepath.Join(expected, rel+".json"))
			if err != nil {
				t.Fatal(err)
			}
			compare(t, proc.TranslateRaw(body, Received), want, ignore)
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

func readExpected(path string) (Expected, error) {
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

// compare reports how got differs from want.
func compare(t *testing.T, got pipeline.FileOutcome, want Expected, ignore []string) {
	t.Helper()
	switch {
	case want.Error != "":
		if got.Refusal == nil || got.Refusal.Class != want.Error {
			t.Errorf("want a refusal of class %s, got %s", want.Error, describe(got))
		}
		return
	case got.Refusal != nil:
		t.Fatalf("refused: %s: %s", got.Refusal.Class, got.Refusal.Reason)
	case want.Dropped:
		if len(got.Dropped) == 0 || len(got.Published) > 0 {
			t.Errorf("want a drop, got %s", describe(got))
		}
		return
	}
	var gotKeys, wantKeys []string
	for i, r := range got.Published {
		var payload map[string]any
		if err := json.Unmarshal(payloadOf(got.Bodies[i]), &payload); err != nil {
			t.Fatalf("output %s: %v", r.RoutingKey, err)
		}
		gotKeys = append(gotKeys, key(r.RoutingKey, r.CC, payload, ignore))
	}
	for _, o := range want.Outputs {
		// Through JSON, as the published payload is read.
		data, _ := json.Marshal(o.Payload)
		var payload map[string]any
		_ = json.Unmarshal(data, &payload)
		wantKeys = append(wantKeys, key(o.RoutingKey, o.CC, payload, ignore))
	}
	sort.Strings(gotKeys)
	sort.Strings(wantKeys)
	if !reflect.DeepEqual(gotKeys, wantKeys) {
		t.Errorf("outputs differ\n got:\n  %s\nwant:\n  %s", strings.Join(gotKeys, "\n  "), strings.Join(wantKeys, "\n  "))
	}
}

// key is an output as one comparable line.
func key(routingKey string, cc []string, payload map[string]any, ignore []string) string {
	for _, f := range ignore {
		delete(payload, f)
	}
	data, _ := json.Marshal(payload)
	return routingKey + " cc=" + strings.Join(cc, ",") + " " + string(data)
}

// payloadOf is the payload of a body in either envelope.
func payloadOf(body []byte) []byte {
	var env struct {
		Payload json.RawMessage `json:"payload"`
		Meta    json.RawMessage `json:"_meta"`
	}
	if json.Unmarshal(body, &env) == nil && env.Meta != nil && env.Payload != nil {
		return env.Payload
	}
	return body
}

func describe(o pipeline.FileOutcome) string {
	switch {
	case o.Refusal != nil:
		return "a refusal " + o.Refusal.Class + ": " + o.Refusal.Reason
	case len(o.Published) > 0:
		return fmt.Sprintf("%d outputs", len(o.Published))
	case len(o.Dropped) > 0:
		return "a drop: " + o.Dropped[0].Reason
	}
	return "nothing"
}
