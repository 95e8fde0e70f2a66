// Package termtext makes text from upstream messages safe to print on an
// operator's terminal. A routing key, a header or a reason can hold
// escape sequences (ESC, the 8-bit CSI U+009B, bidirectional overrides)
// that a terminal would obey: retitle the window, hide lines, reorder what
// is shown. Upstream is data, never instructions, and that includes
// instructions to the terminal of whoever reads the dead queue or tails an
// exchange.
package termtext

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// String returns s unchanged when it is valid UTF-8 and every rune in it
// is printable (spaces included), and otherwise s quoted as a Go string,
// its control characters and invalid bytes escaped.
func String(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) { // IsPrint takes the ASCII space
			return false
		}
	}
	return true
}

// JSON returns the JSON text b, as json.Indent writes it, with every rune
// that is not printable, other than the newlines, tabs and spaces of the
// layout, written as a \uXXXX escape, and every invalid byte as \ufffd.
// In valid JSON such runes can only stand inside strings, where the escape
// means the same rune: the text stays the same JSON value. A carriage
// return can only be layout (json.Indent keeps trailing whitespace), and
// becomes a space.
func JSON(b []byte) []byte {
	clean := true
	for _, r := range string(b) {
		if !layoutOrPrintable(r) {
			clean = false
			break
		}
	}
	if clean {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r == '\r':
			out = append(out, ' ')
		case layoutOrPrintable(r):
			out = append(out, b[i:i+size]...)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = appendEscape(appendEscape(out, r1), r2)
		default:
			out = appendEscape(out, r)
		}
		i += size
	}
	return out
}

func layoutOrPrintable(r rune) bool {
	return r == '\n' || r == '\t' || r != utf8.RuneError && unicode.IsPrint(r)
}

func appendEscape(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}

// Truncate cuts s to at most n bytes, on a rune boundary, marking the cut
// with "…". Bytes are cut before they are copied into the string, so a
// large body costs only n bytes.
func Truncate[S ~string | ~[]byte](s S, n int) string {
	if len(s) <= n {
		return string(s)
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return string(s[:cut]) + "…"
}
