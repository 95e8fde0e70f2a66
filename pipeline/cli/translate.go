package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// outcomeLine is one line of "translate" output.
type outcomeLine struct {
	Source     string         `json:"source"`
	RoutingKey string         `json:"routing_key,omitempty"`
	CC         []string       `json:"cc,omitempty"`
	WaitFor    []string       `json:"wait_for,omitempty"`
	Payload    map[string]any `json:"payload,omitempty"`
	Error      *errorOutcome  `json:"error,omitempty"`
	Dropped    *dropOutcome   `json:"dropped,omitempty"`
}

type errorOutcome struct {
	Class  string `json:"class"`
	Reason string `json:"reason"`
}

type dropOutcome struct {
	Class  string `json:"class"`
	Reason string `json:"reason"`
	// Rule names the rule that dropped it, if one did.
	Rule string `json:"rule,omitempty"`
}

func translateCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("translate", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	pipelineName := fs.String("pipeline", "", "pipeline to run (default: the first)")
	exchange := fs.String("exchange", "", "the exchange the messages were published to; with --routing-key, the files are bare bodies (default: each file's _meta.exchange)")
	routingKey := fs.String("routing-key", "", "the routing key they were published with (default: each file's _meta.routing_key)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "pulsetranslator translate: name at least one file or folder of raw pulse messages")
		return 2
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator translate: %v\n", err)
		return 1
	}
	proc, err := offlineProcessor(cfg, *pipelineName)
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator translate: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, root := range fs.Args() {
		err := walkFiles(root, func(path string) error {
			for _, line := range translateFile(proc, path, *exchange, *routingKey) {
				if err := enc.Encode(line); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "pulsetranslator translate: %v\n", err)
			return 1
		}
	}
	return 0
}

// offlineProcessor builds the processor of the named (or first) pipeline
// with this binary's plugins.
func offlineProcessor(cfg *config.Config, name string) (*process.Processor, error) {
	return process.PipelineProcessor(cfg, name, translator.Default)
}

// walkFiles calls fn for root, or for every regular file below it in
// lexical order.
func walkFiles(root string, fn func(path string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		return fn(path)
	})
}

// translateFile runs one raw message file through the processor, as the
// runner would but for the readiness gate (see Processor.TranslateRaw):
// published where its _meta says, or to exchange with routingKey when
// either is given.
func translateFile(proc *process.Processor, path, exchange, routingKey string) []outcomeLine {
	body, err := os.ReadFile(path)
	if err != nil {
		return []outcomeLine{{Source: path, Error: &errorOutcome{Class: "unreadable", Reason: err.Error()}}}
	}
	var out process.FileOutcome
	if exchange != "" || routingKey != "" {
		out = proc.TranslateBody(exchange, routingKey, body, time.Now())
	} else {
		out = proc.TranslateRaw(body, time.Now())
	}
	if out.Refusal != nil {
		return []outcomeLine{{Source: path, Error: &errorOutcome{Class: out.Refusal.Class, Reason: out.Refusal.Reason}}}
	}
	var lines []outcomeLine
	for _, r := range out.Published {
		lines = append(lines, outcomeLine{Source: path, RoutingKey: r.RoutingKey, CC: r.CC, WaitFor: r.WaitFor, Payload: r.Payload})
	}
	for _, d := range out.Dropped {
		lines = append(lines, outcomeLine{Source: path, Dropped: &dropOutcome{Class: d.Class, Reason: d.Reason, Rule: d.Rule}})
	}
	return lines
}
