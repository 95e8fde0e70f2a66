package rawjson

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

func TestElements(t *testing.T) {
	cases := []struct {
		raw  string
		want []string
	}{
		{`[]`, nil},
		{` [ ] `, nil},
		{`[1]`, []string{`1`}},
		{`[ "a" , -1.5e3,true,false , null ]`, []string{`"a"`, `-1.5e3`, `true`, `false`, `null`}},
		{`[["branch", "a]\"[", "x"], {"k": [1, {"]": "}"}]}, []]`, []string{`["branch", "a]\"[", "x"]`, `{"k": [1, {"]": "}"}]}`, `[]`}},
		{`["\\", "\\\"", "end"]`, []string{`"\\"`, `"\\\""`, `"end"`}},
		{`{"a": 1}`, nil},
		{`"[1]"`, nil},
		{``, nil},
		// Not from a checked body: what is found, and no panic.
		{`[1,`, []string{`1`}},
		{`[,1]`, nil},
		{`["abc`, []string{`"abc`}},
		{`[[1, 2`, []string{`[1, 2`}},
	}
	for _, c := range cases {
		var got []string
		for e := range Elements([]byte(c.raw)) {
			got = append(got, string(e))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Elements(%s) = %q, want %q", c.raw, got, c.want)
		}
	}
}

func TestUnquote(t *testing.T) {
	cases := []struct {
		raw, want string
		ok        bool
	}{
		{`"plain"`, "plain", true},
		{`""`, "", true},
		{`"a\"b\\c\/d\n\u00e9"`, "a\"b\\c/d\né", true},
		{`"\ud800"`, "\ufffd", true}, // as encoding/json: a lone surrogate
		{`"é漢"`, "é漢", true},
		{`12`, "", false},
		{`"`, "", false},
		{``, "", false},
	}
	for _, c := range cases {
		got, ok := Unquote([]byte(c.raw))
		if string(got) != c.want || ok != c.ok {
			t.Errorf("Unquote(%s) = %q, %v; want %q, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}

// FuzzElementsMatchParse: on any well-formed UTF-8 JSON, the elements
// Elements yields for each array, at any depth, are the items a full parse
// finds, in order.
func FuzzElementsMatchParse(f *testing.F) {
	for _, seed := range []string{`[1, "a", [2, [3]], {"b": "]"}]`, `[["branch", "m-c", "x"], ["uploadFiles", ["a\\\"]", "b"], "y"]]`, `{"p": [[], {}, ""]}`, `[-0.5E+2,true,null,"\\\\"]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || !utf8.Valid(body) {
			return
		}
		var p fastjson.Parser
		v, err := p.ParseBytes(body)
		if err != nil {
			return
		}
		var walk func(raw []byte, v *fastjson.Value)
		walk = func(raw []byte, v *fastjson.Value) {
			switch v.Type() {
			case fastjson.TypeArray:
				items := v.GetArray()
				n := 0
				for e := range Elements(raw) {
					if n >= len(items) {
						t.Fatalf("Elements(%s) yields more than the %d items of the parse", raw, len(items))
					}
					var q fastjson.Parser
					got, err := q.ParseBytes(e)
					if err != nil || string(got.MarshalTo(nil)) != string(items[n].MarshalTo(nil)) {
						t.Fatalf("Elements(%s) item %d is %q, the parse's %s", raw, n, e, items[n])
					}
					walk(e, items[n])
					n++
				}
				if n != len(items) {
					t.Fatalf("Elements(%s) yields %d items, the parse %d", raw, n, len(items))
				}
			case fastjson.TypeObject:
				// Elements of the arrays inside: found through a fresh
				// parse of the raw member value.
				o, _, _ := Check(raw)
				v.GetObject().Visit(func(key []byte, item *fastjson.Value) {
					if member, ok := o.Find(string(key)); ok && string(key) != "" {
						var q fastjson.Parser
						if first, err := q.ParseBytes(member); err == nil && string(first.MarshalTo(nil)) == string(item.MarshalTo(nil)) {
							walk(member, item)
						}
					}
				})
			}
		}
		walk(body, v)
	})
}
