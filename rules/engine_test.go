package rules_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/rules"
)

func compile(t *testing.T, src string) (*rules.Set, error) {
	t.Helper()
	f, err := rules.Parse("r.yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	return rules.Compile(f)
}

func TestRulesApply(t *testing.T) {
	set, err := compile(t, `
tables:
  ignored: [b2g]
rules:
  - name: drop-ignored
    drop_when: payload.platform in tables.ignored
  - name: tag-nightly
    when: '"nightly" in payload.tags'
    set: {nightly: 'true', meta.source: 'input.exchange'}
  - name: cc-tree
    cc: ['"route.tree." + payload.tree', 'payload.revision ?? ""']
`)
	if err != nil {
		t.Fatal(err)
	}
	subj := &rules.Subject{
		Payload: map[string]any{"platform": "linux", "tags": []any{"nightly"}, "tree": "central", "revision": nil},
		Input:   rules.Input{Exchange: "exchange/build/"},
	}
	dropped, err := set.Apply(subj)
	if err != nil || dropped != "" {
		t.Fatalf("dropped %q err %v", dropped, err)
	}
	if subj.Payload["nightly"] != true || subj.Payload["meta"].(map[string]any)["source"] != "exchange/build/" {
		t.Errorf("set: %v", subj.Payload)
	}
	if strings.Join(subj.CC, ",") != "route.tree.central" {
		t.Errorf("cc %v (a nil or empty route adds nothing)", subj.CC)
	}
	ignored := &rules.Subject{Payload: map[string]any{"platform": "b2g"}}
	if dropped, err := set.Apply(ignored); err != nil || dropped != "drop-ignored" {
		t.Errorf("dropped %q err %v, want drop-ignored", dropped, err)
	}
}

// TestRuleErrorsNameFileAndLine checks start-up errors point at the rule.
func TestRuleErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"syntax", "rules:\n  - name: a\n    drop_when: 'payload.x =='\n", "r.yaml:3: rule \"a\": drop_when"},
		{"unknown variable", "rules:\n  - name: a\n    cc: ['nope + \"x\"']\n", "r.yaml:3: rule \"a\": cc[0]"},
		{"not bool", "rules:\n  - name: a\n    drop_when: '\"yes\"'\n", "r.yaml:3: rule \"a\": drop_when"},
		{"two actions", "rules:\n  - name: a\n    drop_when: 'true'\n    cc: ['\"x\"']\n", "r.yaml:2: rule \"a\": give exactly one"},
		{"no name", "rules:\n  - cc: ['\"x\"']\n", "r.yaml:2: rule #1 has no name"},
		{"unknown field", "rules:\n  - name: a\n    drop_if: 'true'\n", "r.yaml: line 2: field drop_if not found"},
		{"duplicate name", "rules:\n  - name: a\n    cc: ['\"x\"']\n  - name: a\n    cc: ['\"y\"']\n", "r.yaml:4: rule \"a\": the name is already used at r.yaml:2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := compile(t, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestRuntimeErrorNamesRule(t *testing.T) {
	set, err := compile(t, "rules:\n  - name: upper\n    set: {x: 'upper(payload.tree)'}\n")
	if err != nil {
		t.Fatal(err)
	}
	_, err = set.Apply(&rules.Subject{Payload: map[string]any{"tree": 42}})
	var re *rules.Error
	if !errors.As(err, &re) || re.Rule != "upper" || re.Where != "r.yaml:2" {
		t.Fatalf("got %v, want a rules.Error naming upper at r.yaml:2", err)
	}
}

func TestBuiltinBuildbotRulesCompile(t *testing.T) {
	f, err := rules.Load("builtin:buildbot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 3 || set.Tables()["platforms"] == nil {
		t.Errorf("%d rules, tables %v", set.Len(), len(set.Tables()))
	}
	if _, err := rules.Load("builtin:nope.yaml"); err == nil || !strings.Contains(err.Error(), "buildbot.yaml") {
		t.Errorf("unknown builtin: %v, want it to list the builtin files", err)
	}
}

func TestWaitFor(t *testing.T) {
	set, err := compile(t, `
rules:
  - name: wait-log
    wait_for: ['payload.logurl', 'payload.more']
  - name: wait-symbols
    when: 'payload.tree == "central"'
    wait_for: ['payload.symbols']
`)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Waits() {
		t.Error("Waits() is false for a set with wait_for rules")
	}
	subj := &rules.Subject{Payload: map[string]any{
		"logurl": "http://a/log", "more": []any{"http://a/x", "", nil, "http://a/log"},
		"tree": "central", "symbols": "",
	}}
	if _, err := set.Apply(subj); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(subj.WaitFor, " "); got != "http://a/log http://a/x" {
		t.Errorf("wait for %q, want the two distinct non-empty URLs", got)
	}
	none := &rules.Subject{Payload: map[string]any{"logurl": nil}}
	if _, err := set.Apply(none); err != nil || len(none.WaitFor) != 0 {
		t.Errorf("a nil URL: wait for %v, err %v; want nothing", none.WaitFor, err)
	}
	_, err = set.Apply(&rules.Subject{Payload: map[string]any{"logurl": 42.0}})
	var re *rules.Error
	if !errors.As(err, &re) || re.Rule != "wait-log" || !strings.Contains(err.Error(), "want a URL string") {
		t.Errorf("a number as URL: %v, want a rules.Error of wait-log", err)
	}

	plain, _ := compile(t, "rules:\n  - name: a\n    cc: ['\"x\"']\n")
	if plain.Waits() {
		t.Error("Waits() is true for a set without wait_for")
	}
}

// TestMembershipInLiteralLists: `in` a list of literals (compiled to one
// constant) means what it says for every kind of literal and any kind of
// value on the left: a boolean is not in a list of strings (expr's own set
// of strings fails on it). Lists with expressions in them and lists that
// are values are left as they are; a string known to be one keeps expr's
// set.
func TestMembershipInLiteralLists(t *testing.T) {
	set, err := compile(t, `
rules:
  - name: in-literals
    set:
      text_set: 'payload.v not in [nil, ""]'
      any_kind: 'payload.v in [true, 2, 2.5, "x", nil]'
      with_expr: 'payload.v in [payload.w, "y"]'
      strings: 'payload.v in ["x", "y"]'
      known_string: 'input.exchange in ["x", "y"]'
      list: '["a", "b"]'
`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		v, w                         any
		textSet, anyKind, withExprIn bool
	}{
		{nil, nil, false, true, true},
		{"", "z", false, false, false},
		{"x", "z", true, true, false},
		{"y", "z", true, false, true},
		{"z", "z", true, false, true},
		{true, nil, true, true, false},
		{false, nil, true, false, false},
		{2, nil, true, true, false},
		{2.5, nil, true, true, false},
		{3, nil, true, false, false},
	}
	for _, c := range cases {
		subj := &rules.Subject{Payload: map[string]any{"v": c.v, "w": c.w}, Input: rules.Input{Exchange: "y"}}
		if _, err := set.Apply(subj); err != nil {
			t.Fatalf("v=%#v: %v", c.v, err)
		}
		p := subj.Payload
		if p["text_set"] != c.textSet || p["any_kind"] != c.anyKind || p["with_expr"] != c.withExprIn {
			t.Errorf("v=%#v w=%#v: not in [nil, \"\"] %v, in [true, 2, 2.5, \"x\", nil] %v, in [w, \"y\"] %v; want %v %v %v",
				c.v, c.w, p["text_set"], p["any_kind"], p["with_expr"], c.textSet, c.anyKind, c.withExprIn)
		}
		if want := c.v == "x" || c.v == "y"; p["strings"] != want {
			t.Errorf("v=%#v: in [\"x\", \"y\"] %v, want %v", c.v, p["strings"], want)
		}
		if p["known_string"] != true {
			t.Errorf("input.exchange in [\"x\", \"y\"]: %v", p["known_string"])
		}
		if list, ok := p["list"].([]any); !ok || len(list) != 2 || list[0] != "a" {
			t.Errorf("a list as a value: %#v", p["list"])
		}
	}
}

// TestSetCopiesSharedObjects: outputs of one message may share nested
// objects; a rule that sets a nested field of one output leaves the
// others' alone.
func TestSetCopiesSharedObjects(t *testing.T) {
	f, err := rules.Parse("r.yaml", []byte("rules:\n  - name: mark\n    when: 'payload.locale == \"de\"'\n    set: {build.flag: 'true'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	shared := map[string]any{"id": "1"}
	de := rules.Subject{Payload: map[string]any{"locale": "de", "build": shared}}
	fr := rules.Subject{Payload: map[string]any{"locale": "fr", "build": shared}}
	for _, s := range []*rules.Subject{&de, &fr} {
		if _, err := set.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	if de.Payload["build"].(map[string]any)["flag"] != true {
		t.Errorf("de's build: %v, want the flag set", de.Payload["build"])
	}
	if _, has := fr.Payload["build"].(map[string]any)["flag"]; has || len(shared) != 1 {
		t.Errorf("fr's build %v and the shared object %v changed with de's", fr.Payload["build"], shared)
	}
}

// TestWrongKindOfValueIsRefused: an expression whose shape can only give
// the wrong kind of value (arithmetic where a boolean is due, a comparison
// where a routing key is due) stops compilation with the file, the line,
// the rule and what to do, although the payload it reads is untyped; one
// whose kind depends on the payload compiles.
func TestWrongKindOfValueIsRefused(t *testing.T) {
	for _, c := range []struct {
		rule, want string
	}{
		{"drop_when: 'payload.tree + 1'", `r.yaml:3: rule "r": drop_when gives a number, never a boolean`},
		{"drop_when: '\"x\" + payload.tree'", `drop_when gives a string, never a boolean`},
		{"when: 'payload.n * 2'\n    cc: ['\"a\"']", `when gives a number, never a boolean`},
		{"when: 'payload.a ? 1 : 2'\n    cc: ['\"a\"']", `when: expected bool, but got int`},
		{"cc: ['payload.tree == \"x\"']", `cc[0]: expected string, but got bool`},
		{"cc: ['payload.n - 1']", `cc[0] gives a number, never a string`},
		{"wait_for: ['payload.url != nil']", `wait_for[0] gives a boolean, never a string or a list of them`},
	} {
		_, err := compile(t, "rules:\n  - name: r\n    "+c.rule+"\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.rule, err, c.want)
		}
	}
	for _, ok := range []string{
		"drop_when: 'payload.skip'",
		"drop_when: 'payload.n + 1 > 2'",
		"when: 'payload.a ?? false'\n    cc: ['payload.route']",
		"cc: ['\"route.\" + payload.tree']",
		"wait_for: ['[payload.a, payload.b]']",
		"wait_for: ['payload.logurl']",
	} {
		if _, err := compile(t, "rules:\n  - name: r\n    "+ok+"\n"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestPayloadReads lists the payload fields each rule reads, and those
// the rules set.
func TestPayloadReads(t *testing.T) {
	set, err := compile(t, `
rules:
  - name: a
    when: 'payload.tre == "x" && payload["platform"] != nil'
    set: {flag: 'payload.tre', meta.x: '1'}
  - name: b
    cc: ['"route." + payload?.revision']
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range set.PayloadReads() {
		got = append(got, r.Rule+":"+r.Field)
	}
	if strings.Join(got, " ") != "a:tre a:platform b:revision" {
		t.Errorf("reads %v", got)
	}
	if strings.Join(set.SetFields(), " ") != "flag meta" {
		t.Errorf("sets %v", set.SetFields())
	}
}

// TestCCRoutesForConsumers: docs shows a cc expression as the routing keys
// it gives, with each payload field as <field>, and its guard in words
// where its shape is a common one.
func TestCCRoutesForConsumers(t *testing.T) {
	set, err := compile(t, `
rules:
  - name: tree
    description: follow one tree
    when: 'payload.tree not in [nil, ""]'
    cc: ['"route.tree." + payload.tree']
  - name: rev
    when: 'payload.revision not in [nil, "", "None"] && payload.kind == "build"'
    cc: ['"route.rev." + payload.revision + ".x"']
  - name: odd
    when: 'len(payload.tags) > 2'
    cc: ['"route." + upper(payload.tree)']
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range set.CCRoutes() {
		got = append(got, r.Pattern+" | "+r.Condition+" | "+r.Description)
	}
	want := []string{
		"route.tree.<tree> | when tree is set | follow one tree",
		`route.rev.<revision>.x | when revision is set and not "None" and kind is "build" | `,
		"route.<…> | when len(payload.tags) > 2 | ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
