// Command pulsetranslator runs event-translator pipelines on Pulse-compatible
// RabbitMQ with the plugins of this repository: "run" is the daemon,
// "translate" runs a pipeline offline over files, "check" validates a
// config with its rules and schemas (see package cli). A binary with other
// plugins is this file with other blank imports.
package main

import (
	"os"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"
	_ "github.com/pulsetranslator/pulsetranslator/translators/all"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
