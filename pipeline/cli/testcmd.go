package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pulsetranslator/pulsetranslator/pipeline/plugintest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

const testUsage = `usage: pulsetranslator test PATH...

Runs declarative test files (*_test.yaml; a folder is searched for them):
raw messages through a pipeline's pure steps (translate, rules, schemas),
compared with what each case expects. No broker is needed.

  config: ../deploy/config.hgpushes.example.yaml   # relative to this file; default: the embedded default
  pipeline: hg                                     # default: the config's first
  cases:
    - name: a push to try
      file: pushes/try.json          # a raw message: its body, with _meta.exchange and _meta.routing_key
      # or: exchange: exchange/hgpushes/v2, routing_key: ..., body: {...} (a body inline)
      outputs:                       # every output, in any order
        - routing_key: push.try
          cc: [route.repo.try]       # optional: left out, the CC routes are not compared
          fields: {repo: try}        # only these payload fields; or payload: {...}, the whole payload
    - name: an old message
      file: pushes/old.json
      dropped: no_match              # the class of the drop (true: any drop)
    - name: not JSON
      body: "{"
      error: malformed_json          # the class of the refusal

It prints one line per file and, for a case that fails, how the outcome
differs, field by field; it exits 1 when a case fails.
`

// testFile is a declarative test file.
type testFile struct {
	Config   string      `yaml:"config"`
	Pipeline string      `yaml:"pipeline"`
	Cases    []yaml.Node `yaml:"cases"`
}

// testCase is one case of a test file.
type testCase struct {
	Name       string       `yaml:"name"`
	File       string       `yaml:"file"`
	Exchange   string       `yaml:"exchange"`
	RoutingKey string       `yaml:"routing_key"`
	Body       any          `yaml:"body"`
	Outputs    []testOutput `yaml:"outputs"`
	Dropped    any          `yaml:"dropped"`
	Error      string       `yaml:"error"`
}

// testOutput is one expected output of a case.
type testOutput struct {
	RoutingKey string         `yaml:"routing_key"`
	CC         []string       `yaml:"cc"`
	Payload    map[string]any `yaml:"payload"`
	Fields     map[string]any `yaml:"fields"`
}

func testCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, testUsage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, testUsage)
		return 2
	}
	files, err := testFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "pulsetranslator test: %v\n", err)
		return 1
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "pulsetranslator test: no *_test.yaml file in %s\n", strings.Join(fs.Args(), " "))
		return 1
	}
	failed := false
	for _, path := range files {
		passed, total, problems := runTestFile(path)
		if len(problems) > 0 {
			failed = true
			fmt.Fprintf(stdout, "FAIL  %s  %d of %d cases\n", path, passed, total)
			for _, p := range problems {
				fmt.Fprintf(stdout, "      %s\n", strings.ReplaceAll(p, "\n", "\n      "))
			}
			continue
		}
		fmt.Fprintf(stdout, "ok    %s  %d cases\n", path, total)
	}
	if failed {
		return 1
	}
	return 0
}

// testFiles expands the arguments: a file as it is, a folder to the
// *_test.yaml files under it.
func testFiles(args []string) ([]string, error) {
	var files []string
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, arg)
			continue
		}
		err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, "_test.yaml") {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(files)
	return files, nil
}

// runTestFile runs every case of the file at path, and says how many
// passed, of how many, and what went wrong: "file:line: case "name": ..."
func runTestFile(path string) (passed, total int, problems []string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, []string{err.Error()}
	}
	var tf testFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return 0, 0, []string{fmt.Sprintf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	dir := filepath.Dir(path)
	configPath := tf.Config
	if configPath != "" && !filepath.IsAbs(configPath) {
		configPath = filepath.Join(dir, configPath)
	}
	pipeline, err := plugintest.Open(configPath, tf.Pipeline, translator.Default)
	if err != nil {
		return 0, 0, []string{fmt.Sprintf("%s: config: %v", path, err)}
	}
	if len(tf.Cases) == 0 {
		return 0, 0, []string{fmt.Sprintf("%s: no cases", path)}
	}
	for _, node := range tf.Cases {
		total++
		var c testCase
		if err := strictKeys(&node, testCaseKeys, testOutputKeys); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%v", path, err))
			continue
		}
		if err := node.Decode(&c); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %s", path, node.Line, strings.TrimPrefix(err.Error(), "yaml: ")))
			continue
		}
		where := fmt.Sprintf("%s:%d: case %q", path, node.Line, c.Name)
		diffs, err := runTestCase(pipeline, dir, c)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
		case len(diffs) > 0:
			problems = append(problems, where+":\n"+strings.Join(diffs, "\n"))
		default:
			passed++
		}
	}
	return passed, total, problems
}

// The fields of a case and of an expected output.
var (
	testCaseKeys   = []string{"name", "file", "exchange", "routing_key", "body", "outputs", "dropped", "error"}
	testOutputKeys = []string{"routing_key", "cc", "payload", "fields"}
)

// strictKeys refuses a case (node) with a field it does not know, or an
// output with one, as the config does: a misspelt field would otherwise
// pass unnoticed.
func strictKeys(node *yaml.Node, caseKeys, outputKeys []string) error {
	check := func(n *yaml.Node, keys []string, what string) error {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%d: %s is not a mapping", n.Line, what)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(keys, k.Value) {
				return fmt.Errorf("%d: %s: field %s not found; the fields are %s", k.Line, what, k.Value, strings.Join(keys, ", "))
			}
		}
		return nil
	}
	if err := check(node, caseKeys, "a case"); err != nil {
		return err
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == "outputs" && node.Content[i+1].Kind == yaml.SequenceNode {
			for _, o := range node.Content[i+1].Content {
				if err := check(o, outputKeys, "an output"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// runTestCase runs one case, and says how its outcome differs from what it
// expects, or why it could not run.
func runTestCase(p *plugintest.Pipeline, dir string, c testCase) ([]string, error) {
	if c.Name == "" {
		return nil, errors.New("give the case a name")
	}
	var body []byte
	switch {
	case c.File != "" && c.Body != nil:
		return nil, errors.New("give file or body, not both")
	case c.File != "":
		path := c.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		var err error
		if body, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	case c.Body != nil:
		if s, ok := c.Body.(string); ok {
			body = []byte(s)
		} else {
			var err error
			if body, err = json.Marshal(c.Body); err != nil {
				return nil, fmt.Errorf("body: %w", err)
			}
		}
	default:
		return nil, errors.New("give the raw message: file, or body (with exchange and routing_key)")
	}
	var got plugintest.Outcome
	if c.Exchange == "" && c.RoutingKey == "" && c.File != "" {
		got = p.TranslateFile(body)
	} else {
		got = p.Translate(c.Exchange, c.RoutingKey, body)
	}

	want := plugintest.Expected{Error: c.Error}
	switch d := c.Dropped.(type) {
	case nil:
	case bool:
		want.Dropped.Expected = d
	case string:
		want.Dropped = plugintest.DropExpectation{Expected: true, Class: d}
	default:
		return nil, errors.New(`dropped: give true, or the class of the drop`)
	}
	// Payload fields a case leaves out of "fields" are not compared.
	var ignore []string
	for _, o := range c.Outputs {
		if o.Payload != nil && o.Fields != nil {
			return nil, errors.New("an output gives payload or fields, not both")
		}
		payload := o.Payload
		if o.Fields != nil {
			payload = o.Fields
			for _, g := range got.Outputs {
				for field := range g.Payload {
					if _, ok := o.Fields[field]; !ok && !slices.Contains(ignore, field) {
						ignore = append(ignore, field)
					}
				}
			}
		}
		cc := o.CC
		if cc == nil {
			// Left out: not compared, so taken from the output of the
			// same routing key.
			if i := slices.IndexFunc(got.Outputs, func(g plugintest.Output) bool { return g.RoutingKey == o.RoutingKey }); i >= 0 {
				cc = got.Outputs[i].CC
			}
		}
		want.Outputs = append(want.Outputs, plugintest.ExpectedOutput{RoutingKey: o.RoutingKey, CC: cc, Payload: payload})
	}
	if c.Error == "" && c.Dropped == nil && len(c.Outputs) == 0 {
		return nil, errors.New("say what the case expects: outputs, dropped or error")
	}
	return plugintest.Compare(got, want, ignore...), nil
}
