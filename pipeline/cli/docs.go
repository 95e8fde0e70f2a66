package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/reference"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func docsCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("docs", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	pipelineFlag := fs.String("pipeline", "", "pipeline (default: the first)")
	format := fs.String("format", "markdown", "markdown, or json (taskcluster's exchanges-reference-v0 shape)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *format != "markdown" && *format != "json" {
		fmt.Fprintf(stderr, "pulsetranslator docs: --format %q: use markdown or json\n", *format)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pulsetranslator docs: %v\n", err)
		return 1
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		return fail(err)
	}
	ship, err := shipped()
	if err != nil {
		return fail(err)
	}
	ref, err := reference.BuildReference(cfg, pipelineName(cfg, *pipelineFlag), translator.Default, ship)
	if err != nil {
		return fail(err)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ref); err != nil {
			return fail(err)
		}
		return 0
	}
	ref.WriteMarkdown(stdout, ship.Schemas)
	return 0
}
