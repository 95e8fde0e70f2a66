package rawjson

import (
	"bytes"
	"encoding/json"
	"iter"
)

// Elements yields the raw value of each element of the array raw, in
// order. raw is meant to be a value of a body Check accepted (one an
// Outline found, or part of one): the elements are found by quotes and
// brackets only, each read once. On anything else Elements never panics
// and yields what it finds; raw that is not an array yields nothing.
func Elements(raw []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		i := skipSpace(raw, 0)
		if i >= len(raw) || raw[i] != '[' {
			return
		}
		if i = skipSpace(raw, i+1); i < len(raw) && raw[i] == ']' {
			return
		}
		for i < len(raw) {
			end := skipValue(raw, i)
			if end == i || !yield(raw[i:end]) {
				return
			}
			if i = skipSpace(raw, end); i >= len(raw) || raw[i] != ',' {
				return
			}
			i = skipSpace(raw, i+1)
		}
	}
}

// Unquote returns the text of the raw JSON string raw as encoding/json
// decodes it, and whether raw is a string. Without escapes the text is
// raw's own bytes, not a copy.
func Unquote(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// skipValue returns the offset just past the well-formed value at i: a
// string, an object or array (by counting brackets outside strings), or a
// number or literal (up to the next delimiter).
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipQuoted(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipQuoted(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && byteClass[b[i]]&isDelimiter == 0 {
		i++
	}
	return i
}

// skipQuoted returns the offset just past the well-formed string that
// opens at i: past the first quote that an even run of backslashes (none
// included) precedes. bytes.IndexByte finds quotes many bytes at a time.
func skipQuoted(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		j += k
		escaped := false
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return j + 1
		}
	}
	return len(b)
}
