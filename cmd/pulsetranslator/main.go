// Command pulsetranslator runs event-translator pipelines on Pulse-compatible
// RabbitMQ: "run" is the daemon, "translate" runs a pipeline offline over
// files, "check" validates a config with its rules and schemas.
package main

import (
	"os"

	_ "github.com/pulsetranslator/pulsetranslator/translators/all"
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }
