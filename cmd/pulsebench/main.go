// Command pulsebench measures a translator end to end on a real broker
// against a bare baseline worker: "pulsetranslator bench" alone, with the
// plugins of this repository (see deploy/local/bench.sh and the
// benchmarks page of the docs).
//
//	go build -o /tmp/pulsetranslator ./cmd/pulsetranslator
//	go run ./cmd/pulsebench -translator /tmp/pulsetranslator -n 20000 -runs 3
package main

import (
	"os"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"
	_ "github.com/pulsetranslator/pulsetranslator/translators/all"
)

func main() { os.Exit(cli.Main(append([]string{"bench"}, os.Args[1:]...), os.Stdout, os.Stderr)) }
