package reference_test

import (
	"fmt"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/reference"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func TestParseKey(t *testing.T) {
	e := reference.ReferenceEntry{RoutingKey: []translator.KeyField{
		{Name: "kind", Constant: "build"}, {Name: "tree"}, {Name: "tags", MultipleWords: true}, {Name: "builder"},
	}}
	cases := []struct {
		key  string
		want string // fmt of the map, or "no"
	}{
		{"build.central.l10n.de.nightly.b1", "map[builder:b1 kind:build tags:l10n.de.nightly tree:central]"},
		{"build.central.b1", "map[builder:b1 kind:build tags: tree:central]"},
		{"test.central.x.b1", "no"},
		{"build.central", "no"},
		{"build..x.b1", "no"},
	}
	for _, c := range cases {
		got, ok := e.ParseKey(c.key)
		s := "no"
		if ok {
			s = fmt.Sprint(got)
		}
		if s != c.want {
			t.Errorf("ParseKey(%q) = %s, want %s", c.key, s, c.want)
		}
	}
}
