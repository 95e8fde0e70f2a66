// Package taskdone is an example translator plugin in a module of its
// own: it turns Taskcluster's "task resolved" messages (the
// task-completed, task-failed and task-exception exchanges of the queue)
// into one flat "task done" message each, with the URL of the run's log.
//
// It ships its JSON Schema (schemas/taskdone/task.json) and its rule file
// (rules/taskdone.yaml, named "builtin:taskdone.yaml" in a config) in the
// binary, with go:embed, and registers both with the translator.
package taskdone

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// Name is what a pipeline's "translator" field names.
const Name = "taskdone"

// Schema is the name of the schema every output satisfies.
const Schema = "taskdone/task.json"

//go:embed schemas
var schemaFiles embed.FS

//go:embed rules
var ruleFiles embed.FS

// DefaultConfig is the pipeline the plugin's binary runs without
// --config: config.yaml.
//
//go:embed config.yaml
var DefaultConfig []byte

func init() {
	translator.MustRegister(translator.Spec{
		Name:    Name,
		Summary: "Taskcluster task-completed/failed/exception messages to one flat message per resolved run",
		New:     New,
		// The embedded trees hold schemas/... and rules/...; the plugin
		// ships what is under them, by the names Output.Schema and
		// "builtin:" use.
		Schemas: sub(schemaFiles, "schemas"),
		Rules:   sub(ruleFiles, "rules"),
	})
}

// Translator translates resolved runs. It is safe for concurrent use: it
// holds only what New computed.
type Translator struct {
	// rootURL is the Taskcluster deployment's root URL, from the rule
	// file's root_url table.
	rootURL string
}

// New reads the root_url table of the pipeline's rule files.
func New(p translator.Params) (translator.Translator, error) {
	root, _ := p.Tables["root_url"].(string)
	if !strings.HasPrefix(root, "https://") {
		return nil, fmt.Errorf("the rule files give no root_url table (the Taskcluster deployment, https://...); got %v", p.Tables["root_url"])
	}
	return &Translator{rootURL: strings.TrimSuffix(root, "/")}, nil
}

// status is the part of the message's status this translator reads.
type status struct {
	TaskID        string `json:"taskId"`
	TaskGroupID   string `json:"taskGroupId"`
	ProvisionerID string `json:"provisionerId"`
	WorkerType    string `json:"workerType"`
	Runs          []run  `json:"runs"`
}

type run struct {
	RunID          int    `json:"runId"`
	State          string `json:"state"`
	ReasonResolved string `json:"reasonResolved"`
	Started        string `json:"started"`
	Resolved       string `json:"resolved"`
}

// resolved are the states of a run that is over.
var resolved = map[string]bool{"completed": true, "failed": true, "exception": true}

// Translate implements translator.Translator.
func (t *Translator) Translate(msg translator.Message) ([]translator.Output, error) {
	// Lookup finds a member without parsing the rest of the body; only the
	// parts read are parsed.
	rawStatus, found, err := msg.Lookup("status")
	if err != nil || !found {
		return nil, translator.Refuse("no_status", "the message has no status object; is it from a task-* exchange of the queue?")
	}
	rawRunID, found, _ := msg.Lookup("runId")
	if !found {
		return nil, translator.Refuse("no_run_id", "the message has no runId")
	}
	var st status
	var runID int
	if err := json.Unmarshal(rawStatus, &st); err != nil {
		return nil, translator.Refuse("bad_status", "the status does not read as a task status: %v", err)
	}
	if err := json.Unmarshal(rawRunID, &runID); err != nil {
		return nil, translator.Refuse("no_run_id", "runId is %s, not an integer", rawRunID)
	}
	if st.TaskID == "" {
		return nil, translator.Refuse("no_task_id", "the status has no taskId")
	}
	var r *run
	for i := range st.Runs {
		if st.Runs[i].RunID == runID {
			r = &st.Runs[i]
		}
	}
	if r == nil {
		return nil, translator.Refuse("no_such_run", "run %d of task %s is not in the status's %d runs", runID, st.TaskID, len(st.Runs))
	}
	if !resolved[r.State] {
		return nil, translator.DropClass("unresolved", "run %d of task %s is %s, not resolved", runID, st.TaskID, r.State)
	}
	payload := map[string]any{
		"task_id":       st.TaskID,
		"run_id":        runID,
		"task_group_id": st.TaskGroupID,
		"worker_type":   st.ProvisionerID + "/" + st.WorkerType,
		"state":         r.State,
		"reason":        r.ReasonResolved,
		"started":       r.Started,
		"resolved":      r.Resolved,
		"duration_s":    duration(r.Started, r.Resolved),
		"log_url":       fmt.Sprintf("%s/api/queue/v1/task/%s/runs/%d/artifacts/public/logs/live_backing.log", t.rootURL, st.TaskID, runID),
	}
	// Routing-key words must not hold dots; a worker type's do not, but
	// upstream is not trusted to keep it so.
	key := strings.Join([]string{r.State, word(st.ProvisionerID), word(st.WorkerType), st.TaskID}, ".")
	return []translator.Output{{RoutingKey: key, Payload: payload, Schema: Schema}}, nil
}

// duration is resolved - started in whole seconds, or nil when either is
// not a time (a run that never started).
func duration(started, resolved string) any {
	s, err1 := time.Parse(time.RFC3339Nano, started)
	r, err2 := time.Parse(time.RFC3339Nano, resolved)
	if err1 != nil || err2 != nil || r.Before(s) {
		return nil
	}
	return int64(r.Sub(s) / time.Second)
}

func word(s string) string {
	if s == "" {
		return "_"
	}
	return strings.ReplaceAll(s, ".", "_")
}

// Describe implements translator.Describer: what "docs" and pulsetail say
// of the routing keys.
func (t *Translator) Describe() []translator.OutputDoc {
	return []translator.OutputDoc{{
		Name:        "task",
		Title:       "Resolved task run",
		Description: "One message per run of a Taskcluster task that completed, failed or ended in an exception.",
		Schema:      Schema,
		RoutingKey: []translator.KeyField{
			{Name: "state", Summary: "completed, failed or exception", Required: true},
			{Name: "provisioner", Summary: "the provisioner id", Required: true},
			{Name: "worker_type", Summary: "the worker type", Required: true},
			{Name: "task_id", Summary: "the task's id", Required: true},
		},
	}}
}

// sub is the tree under dir of an embedded FS.
func sub(files embed.FS, dir string) fs.FS {
	tree, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant of this file
	}
	return tree
}
