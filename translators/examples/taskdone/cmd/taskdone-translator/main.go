// Command taskdone-translator is pulsetranslator with the taskdone plugin:
// the whole command line (run, translate, check, docs, dead, ...) from
// package cli, and one blank import per plugin it carries.
package main

import (
	"os"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"

	_ "example.com/taskdone"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
