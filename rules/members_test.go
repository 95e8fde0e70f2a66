package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// TestMapMembersReadAsExprDoes holds the mapMembers patch to expr's own
// reading of members: the same value or the same error, for maps, nested
// maps, missing members, nil and values that are not maps, and checks
// that the patched programs read maps without OpFetch.
func TestMapMembersReadAsExprDoes(t *testing.T) {
	patched := func(src string) *vm.Program {
		p, err := expr.Compile(src, append([]expr.Option{expr.Env(Env{})}, ExprOptions()...)...)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		return p
	}
	plain := func(src string) *vm.Program {
		p, err := expr.Compile(src, expr.Env(Env{}), expr.Patch(constantLists{}))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		return p
	}
	sources := []struct {
		src     string
		fetches bool // whether the patched program still has an OpFetch
	}{
		{`payload.tree`, false},
		{`payload["tree"]`, false},
		{`payload.build.number`, false},
		{`payload.build.steps[0]`, true}, // an index is expr's
		{`tables.platforms.linux`, false},
		{`"route.tree." + payload.tree`, false},
		{`payload.tree not in [nil, ""]`, false},
		{`payload?.build?.number`, true}, // optional reads are expr's
		{`input.exchange + cc[0]`, true}, // struct fields and indexes are expr's
	}
	envs := []Env{
		{},
		{Payload: map[string]any{"tree": "try", "build": map[string]any{"number": 7, "steps": []any{"a"}}}},
		{Payload: map[string]any{"tree": nil, "build": nil}},
		{Payload: map[string]any{"tree": 4, "build": "text"}},
		{Payload: map[string]any{"build": map[string]string{"number": "typed"}}},
		{Payload: map[string]any{"build": struct{ Number int }{3}}},
		{Tables: map[string]any{"platforms": map[string]any{"linux": []any{"fedora"}}}, Input: Input{Exchange: "x"}, CC: []string{"c"}},
		{Tables: map[string]any{"platforms": []any{1}}},
	}
	var machine vm.VM
	for _, s := range sources {
		p, q := patched(s.src), plain(s.src)
		if has := strings.Contains(p.Disassemble(), "OpFetch\t") || strings.Contains(p.Disassemble(), "OpFetch\n"); has != s.fetches {
			t.Errorf("%s: patched program has OpFetch: %v, want %v\n%s", s.src, has, s.fetches, p.Disassemble())
		}
		for i, env := range envs {
			got, gotErr := machine.Run(p, &env)
			want, wantErr := machine.Run(q, &env)
			if fmt.Sprintf("%#v %v", got, gotErr) != fmt.Sprintf("%#v %v", want, wantErr) {
				t.Errorf("%s, env %d: patched %#v (%v), expr %#v (%v)", s.src, i, got, gotErr, want, wantErr)
			}
		}
	}
}
