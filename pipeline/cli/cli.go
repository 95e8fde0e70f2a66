package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/bench"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
)

const usage = `usage: pulsetranslator <command> [flags]

commands:
  run       [--config FILE]                          run the pipelines on RabbitMQ
  translate [--config FILE] [--pipeline NAME] PATH...  translate raw messages offline, one JSON line per outcome
  check     [--config FILE]                          load and compile config, rules and schemas; no broker
  test      PATH...                                  run declarative test files (*_test.yaml) of a pipeline; no broker
  docs      [--config FILE] [--pipeline NAME] [--format markdown|json] [--schemas DIR]
                                                     the reference of the output exchanges, for consumers
  replay    --exchange EX [--routing-key K] PATH...  publish raw message files with confirms
  dead      list|show|replay [--config FILE] [--pipeline NAME] ...
                                                     inspect the dead queue, and replay parked messages after a fix
  teardown  [--config FILE] [--pipeline NAME] [--yes]  list the queues and exchanges run declared, and delete them
  demo      [--http ADDR] [--exit]                   the whole flow on a local broker, with the live page
  tail      [--config FILE] [--exchange EX] [--key PATTERN] [--count N] [--json]
                                                     follow an exchange, routing keys split into their fields
  bench     [-translator BINARY] [-n N] [-runs N] ...  measure a translator against a bare worker on a real broker
                                                     (bench -h lists its flags)

Without --config the embedded default config is used (docs/configuration.md).
Environment: PULSE_CLIENT_ID, PULSE_CONNECTION_STRING override the config.
`

// Program is a binary's command line: this repository's, or a plugin's
// own, which names itself and its default config.
type Program struct {
	// Name is the binary's name in its usage text and messages. Default
	// "pulsetranslator".
	Name string
	// DefaultConfig is the config (YAML, as a config file holds it) the
	// commands use without --config. Default: this repository's embedded
	// default, the buildbot pipeline.
	DefaultConfig []byte
}

// Main runs this repository's command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int { return Program{}.Main(args, stdout, stderr) }

// Main runs the command line and returns the exit code.
func (prog Program) Main(args []string, stdout, stderr io.Writer) int {
	// Messages go to stderr, and name the binary; stdout carries data
	// (translated messages, references, lists), left as it is, but for
	// the usage text.
	helpOut := stdout
	if name := prog.Name; name != "" && name != defaultName {
		helpOut, stderr = renamed(stdout, name), renamed(stderr, name)
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCommand(prog, rest, stdout, stderr)
	case "translate":
		return translateCommand(prog, rest, stdout, stderr)
	case "check":
		return checkCommand(prog, rest, stdout, stderr)
	case "test":
		return testCommand(rest, stdout, stderr)
	case "docs":
		return docsCommand(prog, rest, stdout, stderr)
	case "replay":
		return replayCommand(prog, rest, stdout, stderr)
	case "dead":
		return deadCommand(prog, rest, stdout, stderr)
	case "teardown":
		return teardownCommand(prog, rest, stdout, stderr)
	case "demo":
		return demoCommand(prog, rest, stdout, stderr)
	case "tail":
		return tailCommand(context.Background(), prog, rest, stdout, stderr)
	case bench.Command:
		return bench.Main(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(helpOut, usage)
		return 0
	}
	fmt.Fprintf(stderr, "pulsetranslator: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// defaultName is this repository's binary.
const defaultName = "pulsetranslator"

// loadConfig loads the config file at path, or, without one, the
// program's default config.
func (prog Program) loadConfig(path string) (*config.Config, error) {
	if strings.TrimSpace(path) == "" && prog.DefaultConfig != nil {
		return config.Parse(prog.Name+"'s default config", prog.DefaultConfig)
	}
	return config.LoadOrDefault(path)
}

// commandName matches the binary's name where a message or the usage text
// names it: at the start of a line, after "usage: ", or indented.
var commandName = regexp.MustCompile(`(?m)(^|usage: |  )` + defaultName + `([ :])`)

// renamed is w writing the program's name where the text names the
// binary, so that a plugin's binary speaks of itself.
func renamed(w io.Writer, name string) io.Writer {
	return renamingWriter{w: w, to: []byte("${1}" + name + "${2}")}
}

type renamingWriter struct {
	w  io.Writer
	to []byte
}

func (r renamingWriter) Write(p []byte) (int, error) {
	if _, err := r.w.Write(commandName.ReplaceAll(p, r.to)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// pipelineName is the --pipeline flag's value, or the first pipeline's
// name when it is empty.
func pipelineName(cfg *config.Config, flag string) string {
	if flag == "" {
		return cfg.Pipelines[0].Name
	}
	return flag
}

// isTerminal reports whether w is a terminal, where people read the output
// (text logs, progress bars) rather than programs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// newFlags makes a flag set that prints errors to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
