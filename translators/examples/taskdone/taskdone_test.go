package taskdone_test

import (
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/plugintest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"

	"example.com/taskdone"
)

// TestGolden runs every message of testdata/corpus through the pipeline
// of config.yaml (translator, rule file, schema, as the binary would) and
// compares the outcome with testdata/expected, written by hand from the
// raw messages.
func TestGolden(t *testing.T) {
	p := plugintest.Load(t, "config.yaml", "tasks", translator.Default)
	plugintest.Golden(t, p, "testdata/corpus", "testdata/expected")
}

// TestRefusalsAndDrops covers what the corpus does not: each class the
// translator itself returns.
func TestRefusalsAndDrops(t *testing.T) {
	tr, err := taskdone.New(translator.Params{Tables: map[string]any{"root_url": "https://tc.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, refused, dropped string
	}{
		{"no status", `{"runId": 0}`, "no_status", ""},
		{"no run id", `{"status": {"taskId": "x", "runs": []}}`, "no_run_id", ""},
		{"run id not a number", `{"status": {"taskId": "x", "runs": []}, "runId": "0"}`, "no_run_id", ""},
		{"status not an object", `{"status": [1], "runId": 0}`, "bad_status", ""},
		{"no task id", `{"status": {"runs": [{"runId": 0, "state": "completed"}]}, "runId": 0}`, "no_task_id", ""},
		{"still running", `{"status": {"taskId": "x", "runs": [{"runId": 0, "state": "running"}]}, "runId": 0}`, "", "unresolved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := translator.ReadMessage("exchange/taskcluster-queue/v1/task-completed", "primary.x", nil, []byte(tc.body), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.Translate(msg)
			switch e := err.(type) {
			case *translator.Refusal:
				if e.Class != tc.refused {
					t.Errorf("refused %s (%s), want %q", e.Class, e.Reason, tc.refused)
				}
			case *translator.Dropped:
				if e.Class != tc.dropped {
					t.Errorf("dropped %s (%s), want %q", e.Class, e.Reason, tc.dropped)
				}
			default:
				t.Errorf("err = %v, want a refusal %q or a drop %q", err, tc.refused, tc.dropped)
			}
		})
	}
}

// TestNeedsRootURL: a rule file without the root_url table stops start-up.
func TestNeedsRootURL(t *testing.T) {
	if _, err := taskdone.New(translator.Params{}); err == nil {
		t.Error("New without root_url succeeded")
	}
}
