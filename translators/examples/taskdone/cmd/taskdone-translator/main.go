// Command taskdone-translator is pulsetranslator with the taskdone plugin:
// the whole command line (run, translate, check, docs, dead, ...) from
// package cli, under its own name, running the plugin's config without
// --config. It carries the plugins it imports, and no other.
package main

import (
	"os"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"

	"example.com/taskdone"
)

func main() {
	os.Exit(cli.Program{
		Name:          "taskdone-translator",
		DefaultConfig: taskdone.DefaultConfig,
	}.Main(os.Args[1:], os.Stdout, os.Stderr))
}
