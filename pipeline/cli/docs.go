package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/reference"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func docsCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("docs", stderr)
	configPath := fs.String("config", "", "config file (default: the embedded default)")
	pipelineFlag := fs.String("pipeline", "", "pipeline (default: the first)")
	format := fs.String("format", "markdown", "markdown, or json (taskcluster's exchanges-reference-v0 shape)")
	schemasDir := fs.String("schemas", "", "also write every output schema to this folder, as <dir>/<name> (such as buildbot/build.json)")
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
	if *schemasDir != "" {
		if err := writeSchemas(ship, *schemasDir); err != nil {
			return fail(err)
		}
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

// writeSchemas writes every shipped schema under dir, by its name.
func writeSchemas(ship *process.Shipped, dir string) error {
	for _, name := range ship.Schemas.Names() {
		data, err := json.MarshalIndent(ship.Schemas.Document(name), "", "  ")
		if err != nil {
			return err
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
