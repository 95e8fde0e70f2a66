package rawjson

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCheckGrammar holds Check to encoding/json.Valid on the
// grammar's corners, each written to trip one branch.
func TestCheckGrammar(t *testing.T) {
	cases := []string{
		``, ` `, `{}`, `[]`, ` { } `, `[ ]`, `{"a":1}`, `{"a" : [1, 2, {"b": null}]}`,
		`{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a" 1}`, `[1 2]`,
		`{"a":1}}`, `[1]]`, `{"a":1]`, `[1}`, `{"a":1} x`, `1 2`, `{"a":[}`, `[`, `{`, `{"a":1`,
		`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-a`, `1.5e3.2`,
		`123456789012345678901234567890`, `2e400`, `-01`, `0x1`, `+1`,
		`true`, `false`, `null`, `tru`, `nul`, `falsey`, `True`, `[true,false,null]`,
		`"a"`, `"`, `"abc`, `"\"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\x"`, `"\u00e9"`, `"\u00G9"`,
		`"\u12"`, `"\ud800"`, "\"tab\there\"", "\"nl\nhere\"", "\"\x7f\"", `"é ünïcödé ✓"`,
		`"12345678901234567890\"12345678"`, `["12345678901234567", "x"]`,
		"[1,\r\n\t2]", "\v[]", "[]\x00",
	}
	for _, c := range cases {
		_, fault, _ := Check([]byte(c))
		if want := json.Valid([]byte(c)); (fault == OK) != want {
			t.Errorf("%q: fault %d, encoding/json.Valid says %v", c, fault, want)
		}
	}
}

func TestCheckFaults(t *testing.T) {
	cases := []struct {
		body  string
		fault Fault
		at    int
	}{
		{strings.Repeat("[", 64) + strings.Repeat("]", 64), OK, -1},
		{strings.Repeat("[", 65) + strings.Repeat("]", 65), TooDeep, 64},
		{strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), TooDeep, 5 * 64},
		{strings.Repeat("[", 1000000), TooDeep, 64},
		{"{\"a\": \"x\x01\"}", Control, 8},
		{`{"a": "x"`, Malformed, 9},
		{`{"a": tru}`, Malformed, 6},
		{"{\"a\": \"\xff\"}", NotUTF8, 7},
		{"{\"é\": \"\xe2\x9c\"}", NotUTF8, 8},
		{"[\"\x01\", \"\xc0\"]", NotUTF8, 7},
	}
	for _, c := range cases {
		_, fault, at := Check([]byte(c.body))
		if fault != c.fault || at != c.at {
			t.Errorf("%.40q: fault %d at %d, want %d at %d", c.body, fault, at, c.fault, c.at)
		}
	}
}
