package rules

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Env is what an expression can read.
type Env struct {
	// Payload is the output's normalized payload, as the translator and the
	// earlier rules left it.
	Payload map[string]any `expr:"payload"`
	// RoutingKey is the output's routing key.
	RoutingKey string `expr:"routing_key"`
	// CC is the output's CC routing keys so far.
	CC []string `expr:"cc"`
	// Input describes the raw message the output came from.
	Input Input `expr:"input"`
	// Tables are the named data tables of the pipeline's rule files.
	Tables map[string]any `expr:"tables"`
}

// Input describes the raw message an output came from.
type Input struct {
	Exchange   string `expr:"exchange"`
	RoutingKey string `expr:"routing_key"`
}

// maxNodes bounds the size of one expression.
const maxNodes = 10000

// Set is a compiled, ordered list of rules. It is safe for concurrent use.
type Set struct {
	rules  []compiledRule
	tables map[string]any
	// runs holds *run values: a VM (not safe to share) and the Env it
	// reads, so that neither is allocated per evaluation.
	runs sync.Pool
}

// run is what one Apply evaluates with. The VM reads the Env through a
// pointer: a struct passed by value would be copied to the heap for
// every expression.
type run struct {
	machine vm.VM
	env     Env
}

type compiledRule struct {
	name       string
	where      string // "file:line", for errors
	when       *vm.Program
	whenSource string
	dropWhen   *vm.Program
	set        []setField
	cc         []*vm.Program
	ccSource   []string
	waitFor    []*vm.Program
	// reads are the payload fields its expressions read.
	reads []string
	// description is the rule's Description.
	description string
}

type setField struct {
	path    []string
	program *vm.Program
}

// Compile compiles the rules of files, in order, into a Set. Every problem
// is reported, each with its file, line and rule name.
func Compile(files ...*File) (*Set, error) {
	s := &Set{tables: map[string]any{}}
	s.runs.New = func() any { return &run{} }
	var errs []error
	for _, f := range files {
		for name, table := range f.Tables {
			if _, dup := s.tables[name]; dup {
				errs = append(errs, fmt.Errorf("%s: table %q is defined in an earlier rule file too; rename one", f.Path, name))
			}
			s.tables[name] = table
		}
	}
	env := Env{Tables: s.tables}
	seen := map[string]string{}
	for _, f := range files {
		for i, r := range f.Rules {
			where := fmt.Sprintf("%s:%d", f.Path, r.line)
			cr, err := compileRule(r, i, where, env)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if prev, dup := seen[cr.name]; dup {
				errs = append(errs, fmt.Errorf("%s: rule %q: the name is already used at %s; rule names must be unique", where, cr.name, prev))
				continue
			}
			seen[cr.name] = where
			s.rules = append(s.rules, cr)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func compileRule(r Rule, index int, where string, env Env) (compiledRule, error) {
	cr := compiledRule{name: r.Name, where: where, description: r.Description}
	if r.Name == "" {
		return cr, fmt.Errorf("%s: rule #%d has no name; give every rule a unique name", where, index+1)
	}
	actions := 0
	for _, present := range []bool{!r.DropWhen.IsZero(), len(r.Set) > 0, len(r.CC) > 0, len(r.WaitFor) > 0} {
		if present {
			actions++
		}
	}
	if actions != 1 {
		return cr, fmt.Errorf("%s: rule %q: give exactly one of drop_when, set, cc or wait_for", where, r.Name)
	}
	if !r.DropWhen.IsZero() && !r.When.IsZero() {
		return cr, fmt.Errorf("%s: rule %q: drop_when takes no when; fold the guard into drop_when with &&", where, r.Name)
	}
	var errs []error
	// compile compiles e; want, unless kindUnknown, is the kind of value
	// it must give (listToo: or a list), checked by its shape too.
	compile := func(field string, e Expression, want resultKind, listToo bool, opts ...expr.Option) *vm.Program {
		opts = append(append([]expr.Option{expr.Env(env)}, ExprOptions()...), opts...)
		p, err := expr.Compile(e.Source, opts...)
		if err != nil {
			errs = append(errs, compileError(where, r.Name, field, e, err))
			return p
		}
		// The tree as written: the compiled one has the member accesses
		// patched into calls (see ExprOptions).
		tree, err := parser.Parse(e.Source)
		if err != nil {
			return p
		}
		if want != kindUnknown {
			if got := wrongKind(tree.Node, want, listToo); got != "" {
				what := want.String()
				if listToo {
					what += " or a list of them"
				}
				errs = append(errs, fmt.Errorf("%s:%d: rule %q: %s gives %s, never %s: %s", where[:strings.LastIndexByte(where, ':')], e.Line, r.Name, field, got, what, kindHint(want)))
			}
		}
		cr.reads = append(cr.reads, payloadFields(tree.Node)...)
		return p
	}
	if !r.When.IsZero() {
		cr.when = compile("when", r.When, kindBool, false, expr.AsBool())
		cr.whenSource = r.When.Source
	}
	if !r.DropWhen.IsZero() {
		cr.dropWhen = compile("drop_when", r.DropWhen, kindBool, false, expr.AsBool())
	}
	for _, field := range slices.Sorted(maps.Keys(r.Set)) {
		path := strings.Split(field, ".")
		if slices.Contains(path, "") {
			errs = append(errs, fmt.Errorf("%s: rule %q: set: %q is not a field path (use names joined by dots)", where, r.Name, field))
			continue
		}
		cr.set = append(cr.set, setField{path: path, program: compile("set."+field, r.Set[field], kindUnknown, false)})
	}
	for i, e := range r.CC {
		cr.cc = append(cr.cc, compile(fmt.Sprintf("cc[%d]", i), e, kindString, false, expr.AsKind(reflect.String)))
		cr.ccSource = append(cr.ccSource, e.Source)
	}
	for i, e := range r.WaitFor {
		cr.waitFor = append(cr.waitFor, compile(fmt.Sprintf("wait_for[%d]", i), e, kindString, true))
	}
	return cr, errors.Join(errs...)
}

// kindHint says how to make an expression give want.
func kindHint(want resultKind) string {
	switch want {
	case kindBool:
		return "compare the value (==, !=, in, startsWith, matches) or test it (!= nil)"
	case kindString:
		return "build a string (\"route.\" + payload.tree), or convert a value with string()"
	}
	return ""
}

// FieldRead is a payload field a rule reads.
type FieldRead struct {
	// Field is the name after payload (payload.tree: tree).
	Field string
	// Rule and Where name the rule and its file:line.
	Rule, Where string
}

// PayloadReads lists the payload fields the rules read, in rule order,
// each once per rule: for "check" to compare with the fields the
// translators' schemas define.
func (s *Set) PayloadReads() []FieldRead {
	var out []FieldRead
	for _, r := range s.rules {
		seen := map[string]bool{}
		for _, f := range r.reads {
			if !seen[f] {
				seen[f] = true
				out = append(out, FieldRead{Field: f, Rule: r.name, Where: r.where})
			}
		}
	}
	return out
}

// SetFields lists the top-level payload fields the rules set.
func (s *Set) SetFields() []string {
	var out []string
	for _, r := range s.rules {
		for _, f := range r.set {
			if !slices.Contains(out, f.path[0]) {
				out = append(out, f.path[0])
			}
		}
	}
	return out
}

// compileError places an expr compile error at its line in the rule file.
func compileError(where, rule, field string, e Expression, err error) error {
	line := e.Line
	var fe *file.Error
	if errors.As(err, &fe) && fe.Line > 1 {
		line += fe.Line - 1
	}
	file := where[:strings.LastIndexByte(where, ':')]
	return fmt.Errorf("%s:%d: rule %q: %s: %w", file, line, rule, field, err)
}

// Tables returns the merged tables of the compiled files. The map is shared;
// do not modify it.
func (s *Set) Tables() map[string]any { return s.tables }

// Names returns the rule names, in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.rules))
	for i, r := range s.rules {
		names[i] = r.name
	}
	return names
}

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// CCRoute documents one cc expression: the rule, its guard and the
// expression whose value becomes a CC routing key; Pattern and Condition
// say the same for consumers (route.tree.<tree>, "when tree is set").
type CCRoute struct {
	Rule, When, Expression string
	// Pattern is the routing key with each payload field as <field>.
	Pattern string
	// Condition is the guard in words, or "" for none.
	Condition string
	// Description is the rule's own.
	Description string
}

// CCRoutes lists the cc expressions of the rules, in order.
func (s *Set) CCRoutes() []CCRoute {
	var out []CCRoute
	for _, r := range s.rules {
		for _, src := range r.ccSource {
			out = append(out, CCRoute{Rule: r.name, When: r.whenSource, Expression: src,
				Pattern: pattern(src), Condition: condition(r.whenSource), Description: r.description})
		}
	}
	return out
}

// Waits reports whether any rule has wait_for, that is whether the
// pipeline needs the readiness gate and its wait queues.
func (s *Set) Waits() bool {
	for _, r := range s.rules {
		if len(r.waitFor) > 0 {
			return true
		}
	}
	return false
}

// Subject is the output the rules act on.
type Subject struct {
	// Payload is read and, by set rules, written.
	Payload map[string]any
	// RoutingKey is read.
	RoutingKey string
	// CC is read and, by cc rules, appended to.
	CC []string
	// WaitFor is appended to by wait_for rules: the URLs of the artifacts
	// that must exist before the output is published.
	WaitFor []string
	// Input describes the raw message.
	Input Input
}

// Error is a rule that failed while it ran on a message.
type Error struct {
	// Rule is the rule's name; Where is its "file:line".
	Rule, Where string
	Err         error
}

// Error returns a message that names the rule and its place.
func (e *Error) Error() string {
	return fmt.Sprintf("rule %q (%s) failed: %v", e.Rule, e.Where, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Apply runs every rule on subj, in order. It returns the name of the rule
// that dropped the output ("" when it was kept), or an *Error.
func (s *Set) Apply(subj *Subject) (droppedBy string, err error) {
	if len(s.rules) == 0 {
		return "", nil
	}
	ev := s.runs.Get().(*run)
	defer func() {
		ev.env = Env{}
		s.runs.Put(ev)
	}()
	machine, env := &ev.machine, &ev.env
	*env = Env{Payload: subj.Payload, RoutingKey: subj.RoutingKey, CC: subj.CC, Input: subj.Input, Tables: s.tables}
	for i := range s.rules {
		r := &s.rules[i]
		env.CC = subj.CC
		if r.when != nil {
			ok, err := machine.Run(r.when, env)
			if err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
			if ok != true {
				continue
			}
		}
		if r.dropWhen != nil {
			drop, err := machine.Run(r.dropWhen, env)
			if err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
			if drop == true {
				return r.name, nil
			}
		}
		for _, f := range r.set {
			v, err := machine.Run(f.program, env)
			if err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
			if err := setPath(subj.Payload, f.path, v); err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
		}
		for _, p := range r.cc {
			v, err := machine.Run(p, env)
			if err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
			if route, _ := v.(string); route != "" && !slices.Contains(subj.CC, route) {
				subj.CC = append(subj.CC, route)
			}
		}
		for _, p := range r.waitFor {
			v, err := machine.Run(p, env)
			if err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
			if subj.WaitFor, err = appendURLs(subj.WaitFor, v); err != nil {
				return "", &Error{Rule: r.name, Where: r.where, Err: err}
			}
		}
	}
	return "", nil
}

// setPath stores v at path in m, creating objects on the way.
//
// A nested object on the way is copied before it is changed: outputs of
// one message may share nested values (see translator.Output), so setting
// a field in one output's changes no other's.
func setPath(m map[string]any, path []string, v any) error {
	for i, name := range path[:len(path)-1] {
		next, ok := m[name].(map[string]any)
		switch {
		case ok:
			next = maps.Clone(next)
		case m[name] != nil:
			return fmt.Errorf("set %s: %s is a %T, not an object", strings.Join(path, "."), strings.Join(path[:i+1], "."), m[name])
		default:
			next = map[string]any{}
		}
		m[name] = next
		m = next
	}
	m[path[len(path)-1]] = v
	return nil
}

// appendURLs adds the URLs a wait_for expression yielded: a string, a list
// of strings, or nil; empty strings and repeats add nothing.
func appendURLs(urls []string, v any) ([]string, error) {
	add := func(u string) {
		if u != "" && !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	switch v := v.(type) {
	case nil:
	case string:
		add(v)
	case []string:
		for _, u := range v {
			add(u)
		}
	case []any:
		for i, item := range v {
			u, ok := item.(string)
			if !ok && item != nil {
				return urls, fmt.Errorf("wait_for: item %d is a %T, want a URL string", i, item)
			}
			add(u)
		}
	default:
		return urls, fmt.Errorf("wait_for: the value is a %T, want a URL string or a list of them", v)
	}
	return urls, nil
}
