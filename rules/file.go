// Package rules is the expression rule engine of pulsetranslator, and the
// folder that holds the rule files the translator plugins ship.
//
// A rule file is YAML with two parts:
//
//	tables:            # named data: platform lists, tags, ... (optional)
//	  ignored_platforms: [dolphin, nexus-4]
//	rules:             # applied in order to every output (optional)
//	  - name: cc-tree
//	    cc: ['"route.tree." + payload.tree']
//	  - name: drop-try
//	    drop_when: 'payload.tree == "try"'
//	  - name: mark-nightly
//	    when: '"nightly" in payload.tags'
//	    set: {nightly: 'true'}
//	  - name: wait-for-log
//	    wait_for: ['payload.logurl']
//
// Tables go to the pipeline's translator (translator.Params.Tables) and to
// expressions as "tables". Expressions are expr-lang programs
// (https://expr-lang.org), compiled and type-checked once at start-up; see
// Env for what they can read.
package rules

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Builtin holds the rule files shipped in this folder. A pipeline names one
// of them as "builtin:NAME", for example "builtin:buildbot.yaml".
//
//go:embed *.yaml
var Builtin embed.FS

// BuiltinPrefix marks a rule file path that names a file in Builtin.
const BuiltinPrefix = "builtin:"

// File is one parsed rule file.
type File struct {
	// Path is where the file came from, as given to Load; it prefixes every
	// error about the file.
	Path string
	// Tables are the file's named data tables.
	Tables map[string]any `yaml:"tables"`
	// Rules are the file's rules, in order.
	Rules []Rule `yaml:"rules"`
}

// Rule is one rule of a rule file. Exactly one of DropWhen, Set, CC or
// WaitFor must be given; When is an optional guard for all but DropWhen.
type Rule struct {
	// Name identifies the rule in logs, counters and errors. Required, unique
	// within a pipeline.
	Name string `yaml:"name"`
	// Description says what the rule does, for people: "docs" shows it
	// beside the CC routes the rule adds (where a word's form varies, say
	// so here). Optional.
	Description string `yaml:"description"`
	// When is a boolean expression; the rule applies only where it is true.
	// Optional; by default the rule always applies.
	When Expression `yaml:"when"`
	// DropWhen is a boolean expression; where it is true the output is
	// dropped, with the rule's name as the reason.
	DropWhen Expression `yaml:"drop_when"`
	// Set maps payload fields (dotted paths for nested objects) to
	// expressions whose values are stored there.
	Set map[string]Expression `yaml:"set"`
	// CC lists string expressions; each value is added to the output's CC
	// routing keys. A value that is nil or empty adds nothing.
	CC []Expression `yaml:"cc"`
	// WaitFor lists expressions that yield artifact URLs (a string, a list
	// of strings, or nil or "" for none): the output is published only once
	// every one of them answers, and waits in the pipeline's wait queues
	// until then.
	WaitFor []Expression `yaml:"wait_for"`

	line int
}

// Expression is the source of one expression with its place in the file.
type Expression struct {
	Source string
	Line   int
	Column int
}

// UnmarshalYAML records the expression's source and position.
func (e *Expression) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: an expression must be a string", node.Line)
	}
	*e = Expression{Source: node.Value, Line: node.Line, Column: node.Column}
	return nil
}

// IsZero reports whether the expression is absent.
func (e Expression) IsZero() bool { return strings.TrimSpace(e.Source) == "" }

// UnmarshalYAML decodes a rule and records its line.
func (r *Rule) UnmarshalYAML(node *yaml.Node) error {
	type plain Rule
	// The strict decode refuses unknown fields; the second decode, of the
	// original node, keeps every expression's true line.
	if err := decodeStrict(node, (*plain)(r)); err != nil {
		return err
	}
	if err := node.Decode((*plain)(r)); err != nil {
		return err
	}
	r.line = node.Line
	return nil
}

// decodeStrict decodes node into v, refusing unknown fields.
func decodeStrict(node *yaml.Node, v any) error {
	data, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	// Re-encoding loses positions; keep the original line in errors.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("line %d: %s", node.Line, stripYAMLPrefix(err.Error()))
	}
	return nil
}

func stripYAMLPrefix(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	// Lines inside a re-encoded node are relative; drop them.
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
		msg = msg[i+2:]
	}
	return msg
}

// Parse parses one rule file; path names it in errors.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	f.Path = path
	return f, nil
}

// Load reads and parses the rule file at path; a path starting with
// "builtin:" names a file shipped in Builtin.
func Load(path string) (*File, error) {
	var (
		data []byte
		err  error
	)
	if name, ok := strings.CutPrefix(path, BuiltinPrefix); ok {
		data, err = Builtin.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("%s: no such builtin rule file (builtin files: %s)", path, builtinNames())
		}
	} else if data, err = os.ReadFile(path); err != nil {
		return nil, fmt.Errorf("rule file: %w", err)
	}
	return Parse(path, data)
}

func builtinNames() string {
	entries, _ := Builtin.ReadDir(".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}
