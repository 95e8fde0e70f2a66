package buildbot

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// member, the test's view of eachMember and skipValue (what locate
// is made of), returns the raw value of the first member of the object obj
// named name, or nil when obj is not an object or has no such member.
func member(obj []byte, name string) []byte {
	var found []byte
	eachMember(obj, skipSpace(obj, 0), func(key []byte, at int) int {
		end := skipValue(obj, at)
		if found == nil && keyIs(key, name) {
			found = obj[at:end]
		}
		return end
	})
	return found
}

func TestMember(t *testing.T) {
	cases := []struct {
		obj, name, want string
	}{
		{`{"a": 1, "b": [1, {"c": "]}"}], "c": true}`, "c", `true`},
		{`{"a": 1, "b": [1, {"c": "]}"}], "c": true}`, "b", `[1, {"c": "]}"}]`},
		{`{"s": "a \"quoted\" }", "t": {"u": null}}`, "t", `{"u": null}`},
		{`{"s": "ends in a backslash\\", "t": -1.5e3}`, "t", `-1.5e3`},
		{`{"s": "\\\"", "t": 2}`, "t", `2`},
		{` { "\u005fmeta" : {"routing_key": "k"} } `, "_meta", `{"routing_key": "k"}`},
		{`{"a": 1, "a": 2}`, "a", `1`},
		{`{"a":{"b":1},"b":2}`, "b", `2`},
		{`{"ab": 1}`, "a", ``},
		{`{}`, "a", ``},
		{`[{"a": 1}]`, "a", ``},
		{`"a"`, "a", ``},
		{``, "a", ``},
		{`{"a": `, "a", ``},
		{`{"a" 1}`, "a", ``},
	}
	for _, c := range cases {
		if got := string(member([]byte(c.obj), c.name)); got != c.want {
			t.Errorf("member(%s, %q) = %q, want %q", c.obj, c.name, got, c.want)
		}
	}
}

// FuzzMemberMatchesParse: on any well-formed UTF-8 JSON object, member finds
// the value a full parse finds (fastjson, whose Get also takes the first
// of duplicate names), for every name the object has.
func FuzzMemberMatchesParse(f *testing.F) {
	for _, seed := range []string{`{"a": "\\\"}", "b": [{"c": "]"}]}`, `{"\u0061": 1, "a": 2}`, `{"x":-0.5E+2,"y":[[],{}],"z":"\\\\"}`,
		`{"payload": {"build": {"steps": [{"text": ["a", "}"], "times": [1.5, null]}], "results": 0, "properties": [["branch", "mozilla-central", "x"]]}}, "_meta": {"routing_key": "build.x.1.finished"}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || !utf8.Valid(body) { // as Decode passes them
			return
		}
		var p fastjson.Parser
		v, err := p.ParseBytes(body)
		if err != nil || v.Type() != fastjson.TypeObject {
			return
		}
		var names []string
		v.GetObject().Visit(func(key []byte, _ *fastjson.Value) { names = append(names, string(key)) })
		for _, name := range append(names, "absent") {
			want := v.Get(name)
			got := member(body, name)
			switch {
			case want == nil && got == nil:
			case want == nil || got == nil:
				t.Fatalf("%q in %q: member found %q, the parse %v", name, body, got, want)
			default:
				var q fastjson.Parser
				g, err := q.ParseBytes(got)
				if err != nil || string(g.MarshalTo(nil)) != string(want.MarshalTo(nil)) {
					t.Fatalf("%q in %q: member found %q, the parse %s", name, body, got, want)
				}
			}
		}
	})
}
