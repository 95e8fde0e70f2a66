// Command pulsetail follows any Pulse exchange and prints each message,
// its routing key split into its named fields when the exchange is an
// output of the config's pipelines: "pulsetranslator tail" alone, with
// the plugins of this repository.
//
//	pulsetail --exchange exchange/pulsetranslator/build/normalized --key 'build.mozilla-central.#'
package main

import (
	"os"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"
	_ "github.com/pulsetranslator/pulsetranslator/translators/all"
)

func main() { os.Exit(cli.Main(append([]string{"tail"}, os.Args[1:]...), os.Stdout, os.Stderr)) }
