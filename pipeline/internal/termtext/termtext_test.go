package termtext_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
)

// hostile are the runes a terminal obeys: ESC (window title, colours,
// cursor moves), BEL, carriage return, the 8-bit CSI, a bidirectional
// override, and an invalid byte.
var hostile = []string{"\x1b", "\x07", "\r", "\u009b", "\u202e", "\xff"}

func obeyed(s string) []string {
	var found []string
	for _, h := range hostile {
		if strings.Contains(s, h) {
			found = append(found, h)
		}
	}
	return found
}

func TestString(t *testing.T) {
	for _, s := range []string{"build.mozilla-central.linux64", "dépôt 日本 ok", ""} {
		if got := termtext.String(s); got != s {
			t.Errorf("String(%q) = %q, want it unchanged", s, got)
		}
	}
	in := "build.\x1b]0;owned\x07.\u009b31m\u202eevil\r\xff"
	got := termtext.String(in)
	if found := obeyed(got); len(found) > 0 {
		t.Errorf("String(%q) = %q still holds %q", in, got, found)
	}
	if !strings.Contains(got, `\x1b]0;owned\a`) || !strings.Contains(got, `\u202e`) {
		t.Errorf("String(%q) = %q; want the escapes spelled out", in, got)
	}
}

func TestJSON(t *testing.T) {
	plain := []byte("{\n  \"a\": \"dépôt\",\n\t\"b\": [1, 2]\n}")
	if got := termtext.JSON(plain); !bytes.Equal(got, plain) {
		t.Errorf("JSON changed printable text: %s", got)
	}
	value := map[string]string{"title": "\u009b2J\u202eevil \U0001F600 \x7f", "bad": "x"}
	raw, _ := json.Marshal(value)
	raw = bytes.Replace(raw, []byte(`"x"`), []byte("\"\xff\""), 1) // an invalid byte, which json.Valid lets pass
	var indented bytes.Buffer
	if err := json.Indent(&indented, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	got := termtext.JSON(indented.Bytes())
	if found := obeyed(string(got)); len(found) > 0 {
		t.Errorf("JSON(%s) = %s still holds %q", indented.Bytes(), got, found)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("JSON(%s) = %s is no longer JSON: %v", indented.Bytes(), got, err)
	}
	if back["title"] != value["title"] || back["bad"] != "\ufffd" {
		t.Errorf("JSON changed the value: %q, want %q and the bad byte as U+FFFD", back, value)
	}
}

// FuzzJSON: for any JSON text, as json.Indent lays it out, JSON gives the
// same JSON value, with no rune a terminal would obey; for any string,
// String gives it back unchanged or quoted, with no such rune.
func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"a": "b\u009b2J", "c": [1, "\u202e"]}`))
	f.Add([]byte("\"\xff\x1b\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s := termtext.String(string(b)); s != string(b) {
			if found := obeyed(s); len(found) > 0 {
				t.Fatalf("String(%q) = %q holds %q", b, s, found)
			}
		}
		var indented bytes.Buffer
		if json.Indent(&indented, b, "", "  ") != nil {
			return
		}
		got := termtext.JSON(indented.Bytes())
		if found := obeyed(string(got)); len(found) > 0 {
			t.Fatalf("JSON(%q) = %q holds %q", indented.Bytes(), got, found)
		}
		var before, after any
		errBefore := json.Unmarshal(indented.Bytes(), &before)
		if err := json.Unmarshal(got, &after); err != nil {
			if errBefore == nil {
				t.Fatalf("JSON(%q) = %q is not JSON: %v", indented.Bytes(), got, err)
			}
			return
		}
		if errBefore == nil && !reflect.DeepEqual(before, after) {
			t.Fatalf("JSON(%q) = %q reads as %#v, not %#v", indented.Bytes(), got, after, before)
		}
	})
}

// TestTruncate: a cut text is at most n bytes, ends with the mark, and
// never splits a rune; a short one is unchanged.
func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijkl", 10, "abcdefg…"},
		{"ééééééé", 10, "ééé…"},
	} {
		got := termtext.Truncate(c.in, c.n)
		if got != c.want || len(got) > c.n {
			t.Errorf("Truncate(%q, %d) = %q; want %q, at most %d bytes", c.in, c.n, got, c.want, c.n)
		}
		if b := termtext.Truncate([]byte(c.in), c.n); b != got {
			t.Errorf("Truncate of bytes %q = %q; want %q as of the string", c.in, b, got)
		}
	}
}
