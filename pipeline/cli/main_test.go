package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

const corpus = "../../translators/buildbot/testdata/corpus/buildbot"

// TestTranslateCorpus runs "translate" over the whole corpus: an outcome
// for each of the 75 files, exit 0, and no output that breaks its schema.
func TestTranslateCorpus(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"translate", corpus}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	sources := map[string]bool{}
	classes := map[string]int{}
	outputs := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var o struct {
			Source     string         `json:"source"`
			RoutingKey string         `json:"routing_key"`
			CC         []string       `json:"cc"`
			Payload    map[string]any `json:"payload"`
			Error      *struct{ Class, Reason string }
			Dropped    *struct{ Reason string }
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		sources[o.Source] = true
		switch {
		case o.Error != nil:
			classes[o.Error.Class]++
		case o.Dropped != nil:
			classes["dropped"]++
		default:
			outputs++
			if o.RoutingKey == "" || o.Payload["tree"] == nil || len(o.CC) < 2 {
				t.Errorf("incomplete output line %q", line)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(corpus, "*", "*"))
	if len(sources) != 75 || len(files) != 75 {
		t.Errorf("outcomes for %d files, want all %d", len(sources), len(files))
	}
	if classes["schema"] != 0 || classes["internal"] != 0 {
		t.Errorf("outcomes %v: no output may break its schema", classes)
	}
	if outputs != 231 || classes["no_build_url"] != 10 || classes["dropped"] != 1 {
		t.Errorf("%d outputs, %v; want 231 outputs, 10 no_build_url, 1 dropped", outputs, classes)
	}
}

func TestCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"pipeline build: translator buildbot", "exchange/pulsetranslator/build/normalized", "cc-tree", "ok"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "guest:guest") {
		t.Error("check shows the password")
	}
}

// TestCheckNamesWaitQueuesOfEveryPipeline: a pipeline whose rules wait
// for no artifact has wait queues too, for the outputs a consumer's queue
// refuses, and check names them.
func TestCheckNamesWaitQueuesOfEveryPipeline(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "--config", "../../deploy/config.hgpushes.example.yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "wait queues queue/pulsetranslator/hg/wait/15s, queue/pulsetranslator/hg/wait/1m, queue/pulsetranslator/hg/wait/5m, for outputs a queue refuses; deadline 10m0s, then unpublishable"
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("check output lacks %q:\n%s", want, stdout.String())
	}
	if strings.Contains(stdout.String(), "readiness gate") {
		t.Errorf("check shows a readiness gate for a pipeline whose rules wait for nothing:\n%s", stdout.String())
	}
}

func TestCheckRefusesBadRule(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.yaml"), "rules:\n  - name: broken\n    drop_when: 'payload.x =='\n")
	writeFile(t, filepath.Join(dir, "c.yaml"), `client_id: me
pipelines:
  - name: build
    translator: buildbot
    bindings: [{exchange: exchange/build/, routing_keys: ['#']}]
    outputs: [{exchange: out}]
    rules: [builtin:buildbot.yaml, bad.yaml]
`)
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "--config", filepath.Join(dir, "c.yaml")}, &stdout, &stderr); code == 0 {
		t.Fatal("check accepted a broken rule")
	}
	if !strings.Contains(stderr.String(), "bad.yaml:3: rule \"broken\"") {
		t.Errorf("error does not name the file and line: %s", stderr.String())
	}
}

// TestDeadUsage checks the dead command refuses what it cannot do before
// it connects anywhere.
func TestDeadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"dead"},
		{"dead", "purge"},
		{"dead", "show"},
		{"dead", "show", "1", "2"},
		{"dead", "replay"},
		{"dead", "replay", "--all", "3"},
		{"dead", "replay", "zero"},
		{"dead", "list", "4"},
	} {
		var out, errOut strings.Builder
		if code := Main(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage: pulsetranslator dead") && !strings.Contains(errOut.String(), "not a position") {
			t.Errorf("%v: exit %d, stderr %q; want 2 with the usage", args, code, errOut.String())
		}
	}
}

// TestCheckRefusesANonBooleanDropWhen: a drop_when that can only give a
// number (it compiled, and parked every message as "rule" at run time)
// stops check with the file, the line, the rule and what to do; a rule
// that reads a payload field no schema defines is a warning that names
// it.
func TestCheckRefusesANonBooleanDropWhen(t *testing.T) {
	dir := t.TempDir()
	config := `client_id: me
pipelines:
  - name: build
    translator: buildbot
    bindings: [{exchange: exchange/build/, routing_keys: ['#']}]
    outputs: [{exchange: out}]
    rules: [builtin:buildbot.yaml, extra.yaml]
`
	writeFile(t, filepath.Join(dir, "c.yaml"), config)
	writeFile(t, filepath.Join(dir, "extra.yaml"), "rules:\n  - name: drop-odd\n    drop_when: 'payload.tree + 1'\n")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "--config", filepath.Join(dir, "c.yaml")}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), `extra.yaml:3: rule "drop-odd": drop_when gives a number, never a boolean: compare the value`) {
		t.Errorf("exit %d, stderr %q; want 1, naming the file, line and rule", code, stderr.String())
	}

	writeFile(t, filepath.Join(dir, "extra.yaml"), "rules:\n  - name: drop-try\n    drop_when: 'payload.tre == \"try\"'\n")
	stdout.Reset()
	stderr.Reset()
	if code := Main([]string{"check", "--config", filepath.Join(dir, "c.yaml")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := `warning: rule "drop-try" (` + filepath.Join(dir, "extra.yaml") + `:2) reads payload.tre, which no schema of this binary defines`; !strings.Contains(stdout.String(), want) {
		t.Errorf("check lacks %q:\n%s", want, stdout.String())
	}
	if strings.Contains(stdout.String(), "payload.tree,") {
		t.Errorf("check warns of a field the schema defines:\n%s", stdout.String())
	}
}

// TestUnregisteredTranslatorIsPlaced: a pipeline that names a translator
// the binary lacks stops check with the file and line of its translator
// field, the translators the binary has, and why it may lack one.
func TestUnregisteredTranslatorIsPlaced(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), `client_id: me
pipelines:
  - name: build
    translator: taskdone
    bindings: [{exchange: exchange/build/, routing_keys: ['#']}]
    outputs: [{exchange: out}]
`)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"check", "--config", filepath.Join(dir, "c.yaml")}, &stdout, &stderr)
	if want := filepath.Join(dir, "c.yaml") + `:4: pipeline "build": translator "taskdone" is not in this binary, which has buildbot, mapping; a binary carries the plugins it imports`; code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), want)
	}
}
