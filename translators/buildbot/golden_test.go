package buildbot_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/schemas"
	"github.com/pulsetranslator/pulsetranslator/translators/buildbot"
)

// corpus is a copy of the shared Buildbot corpus: raw messages, and for 41
// of them what the original pulsetranslator published (see its README).
const corpus = "testdata/corpus"

// refusalClasses maps the original's exception names to our classes.
var refusalClasses = map[string]string{
	"NoBuildUrlError":      "no_build_url",
	"NoLogUrlError":        "no_log_url",
	"BadPlatformError":     "bad_platform",
	"BadOSError":           "bad_os",
	"BadTagError":          "bad_tag",
	"BadLocalesError":      "bad_locales",
	"BadPulseMessageError": "unknown_message_type",
}

// expectedFile is one file of corpus/expected.
type expectedFile struct {
	Outputs []struct {
		RoutingKey string         `json:"routing_key"`
		Payload    map[string]any `json:"payload"`
	} `json:"outputs"`
	Error   string `json:"error"`
	Detail  string `json:"detail"`
	Dropped string `json:"dropped"`
	Note    string `json:"note"`
}

// newTranslator builds the translator from the shipped rule file.
func newTranslator(t testing.TB) translator.Translator {
	t.Helper()
	f, err := rules.Load("builtin:buildbot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := buildbot.New(translator.Params{Pipeline: "test", Tables: set.Tables()})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// readRaw reads a raw corpus message as the framework would decode it.
func readRaw(t testing.TB, path string) translator.Message {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Meta struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	msg, err := translator.ReadMessage(m.Meta.Exchange, m.Meta.RoutingKey, nil, body, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return msg
}

// canonical returns a payload as encoding/json would decode it, without the
// clock-dependent fields.
func canonical(t testing.TB, payload map[string]any) string {
	t.Helper()
	clean := make(map[string]any, len(payload))
	for k, v := range payload {
		if k != "timestamp" && k != "insertion_time" {
			clean[k] = v
		}
	}
	data, err := json.Marshal(clean)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(v) // map keys sorted
	return string(again)
}

// TestGoldenCorpus checks the translator against every expected file: the
// same routing keys and payloads (as multisets), the same refusals.
func TestGoldenCorpus(t *testing.T) {
	tr := newTranslator(t)
	sch, err := schemas.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(corpus, "expected", "*", "*.json"))
	if len(files) != 41 {
		t.Fatalf("found %d expected files, want 41", len(files))
	}
	for _, expPath := range files {
		rel, _ := filepath.Rel(filepath.Join(corpus, "expected"), expPath)
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(expPath)
			if err != nil {
				t.Fatal(err)
			}
			var want expectedFile
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			rawPath := filepath.Join(corpus, "buildbot", strings.TrimSuffix(rel, ".json"))
			outs, err := tr.Translate(readRaw(t, rawPath))
			if want.Error != "" {
				var refusal *translator.Refusal
				if !errors.As(err, &refusal) || refusal.Class != refusalClasses[want.Error] {
					t.Fatalf("got %v (outputs %d), want a %s refusal (%s)", err, len(outs), refusalClasses[want.Error], want.Error)
				}
				if !strings.Contains(refusal.Reason, want.Detail) {
					t.Errorf("reason %q does not name %q", refusal.Reason, want.Detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			var got, exp []string
			for _, o := range outs {
				if err := sch.Validate(o.Schema, o.Payload); err != nil {
					t.Errorf("output %s breaks its schema: %v", o.RoutingKey, err)
				}
				got = append(got, o.RoutingKey+" "+canonical(t, o.Payload))
			}
			for _, o := range want.Outputs {
				exp = append(exp, o.RoutingKey+" "+canonical(t, o.Payload))
			}
			sort.Strings(got)
			sort.Strings(exp)
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("outputs differ (note: %q)\n%s", want.Note, diffLines(exp, got))
			}
		})
	}
}

// diffLines shows which lines only one side has.
func diffLines(want, got []string) string {
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	var b strings.Builder
	for line, n := range count {
		switch {
		case n > 0:
			fmt.Fprintf(&b, "missing: %s\n", line)
		case n < 0:
			fmt.Fprintf(&b, "extra:   %s\n", line)
		}
	}
	return b.String()
}

// TestTranslateConcurrently translates the corpus from several goroutines
// at once, as the runner's handlers do with one translator, and holds every
// result to the one-at-a-time translation of the same message: the pooled
// property lists are never shared between two messages.
func TestTranslateConcurrently(t *testing.T) {
	tr := newTranslator(t)
	paths, _ := filepath.Glob(filepath.Join(corpus, "buildbot", "*", "*"))
	msgs := make([]translator.Message, len(paths))
	want := make([]string, len(paths))
	result := func(m translator.Message) string {
		outs, err := tr.Translate(m)
		var b strings.Builder
		fmt.Fprintf(&b, "%v", err)
		for _, o := range outs {
			b.WriteString("\n" + o.RoutingKey + " " + canonical(t, o.Payload))
		}
		return b.String()
	}
	for i, p := range paths {
		msgs[i] = readRaw(t, p)
		want[i] = result(msgs[i])
	}
	const workers, rounds = 4, 5
	errs := make(chan string, workers)
	for w := range workers {
		go func() {
			for r := range rounds {
				for k := range msgs {
					i := (k*7 + w*13 + r) % len(msgs) // each worker in its own order
					if got := result(msgs[i]); got != want[i] {
						errs <- fmt.Sprintf("%s: concurrently %q\nalone %q", paths[i], got, want[i])
						return
					}
				}
			}
			errs <- ""
		}()
	}
	for range workers {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
