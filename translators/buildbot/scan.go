package buildbot

import (
	"bytes"
	"encoding/json"
)

// The translator reads about a quarter of a raw body (the properties, the
// results and _meta); the build steps, source stamp and times it never
// reads make up the rest. Rather than parse them, it steps over them: the
// functions here find a member's raw value in a JSON object by matching
// quotes and brackets only. They rely on the body being well-formed JSON,
// which the pipeline checks before a translator sees it (see
// translator.Message); on anything else they never panic and find what
// they find, which the parse of the found values then refuses.

// eachMember calls visit with the quoted name and the value's offset of
// each member of the object at b[i:], in order; visit returns the offset
// just past the value, having skipped or read it. eachMember returns the
// offset just past the object (of the value, when it is no object).
func eachMember(b []byte, i int, visit func(key []byte, at int) int) int {
	if i >= len(b) || b[i] != '{' {
		return skipValue(b, i)
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		end := skipString(b, i)
		key := b[i:end]
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			return i
		}
		i = skipSpace(b, visit(key, skipSpace(b, i+1)))
		if i >= len(b) || b[i] != ',' {
			break
		}
		i = skipSpace(b, i+1)
	}
	if i < len(b) && b[i] == '}' {
		i++
	}
	return i
}

// keyIs tells whether a quoted member name is name. A name written with
// escapes ("\u005fmeta") is unquoted first, so it matches as JSON means.
func keyIs(quoted []byte, name string) bool {
	if len(quoted) < 2 {
		return false
	}
	raw := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == name
}

// skipValue returns the offset just past the value that starts at i.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			// Most bytes of a body mean nothing to the scan: step over
			// them eight at a time when they can be.
			for i+8 <= len(b) && (scanClass[b[i]]|scanClass[b[i+1]]|scanClass[b[i+2]]|scanClass[b[i+3]]|
				scanClass[b[i+4]]|scanClass[b[i+5]]|scanClass[b[i+6]]|scanClass[b[i+7]])&bracket == 0 {
				i += 8
			}
			for i < len(b) && scanClass[b[i]]&bracket == 0 {
				i++
			}
			if i >= len(b) {
				break
			}
			switch b[i] {
			case '"':
				i = skipString(b, i)
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
	// A number, true, false or null: up to the next delimiter.
	for i < len(b) && scanClass[b[i]] == 0 {
		i++
	}
	return i
}

// skipString returns the offset just past the string whose opening quote
// is at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		for i+8 <= len(b) && (scanClass[b[i]]|scanClass[b[i+1]]|scanClass[b[i+2]]|scanClass[b[i+3]]|
			scanClass[b[i+4]]|scanClass[b[i+5]]|scanClass[b[i+6]]|scanClass[b[i+7]])&inString == 0 {
			i += 8
		}
		for i < len(b) && scanClass[b[i]]&inString == 0 {
			i++
		}
		if i >= len(b) {
			break
		}
		if b[i] == '"' {
			return i + 1
		}
		i++ // a backslash escapes the next byte
	}
	return len(b)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && scanClass[b[i]]&space != 0 {
		i++
	}
	return i
}

// Byte classes for the scan, as bits: 0 is a byte without meaning to it.
const (
	bracket   = 1 << iota // { } [ ] and the quote: they matter to skipValue
	inString              // the quote and the backslash: they matter in a string
	delimiter             // , : and white space, which end a number or literal
	space                 // white space
)

var scanClass = func() (t [256]uint8) {
	for _, c := range `{}[]"` {
		t[c] |= bracket
	}
	t['"'] |= inString
	t['\\'] |= inString
	for _, c := range ",: \t\r\n" {
		t[c] |= delimiter
	}
	for _, c := range " \t\r\n" {
		t[c] |= space
	}
	return t
}()

// rawParts are the raw values of the members of a Buildbot body the
// translator reads; nil where there is none.
type rawParts struct {
	meta, results, properties []byte
}

// locate finds _meta, payload.build.results and payload.build.properties
// in one pass over the body, stepping over everything else. Like a parse,
// it takes the first of members with the same name.
func locate(body []byte) rawParts {
	var parts rawParts
	var sawPayload, sawBuild bool
	eachMember(body, skipSpace(body, 0), func(key []byte, at int) int {
		switch {
		case !sawPayload && keyIs(key, "payload"):
			sawPayload = true
			return eachMember(body, at, func(key []byte, at int) int {
				if sawBuild || !keyIs(key, "build") {
					return skipValue(body, at)
				}
				sawBuild = true
				return eachMember(body, at, func(key []byte, at int) int {
					end := skipValue(body, at)
					switch {
					case parts.results == nil && keyIs(key, "results"):
						parts.results = body[at:end]
					case parts.properties == nil && keyIs(key, "properties"):
						parts.properties = body[at:end]
					}
					return end
				})
			})
		case parts.meta == nil && keyIs(key, "_meta"):
			end := skipValue(body, at)
			parts.meta = body[at:end]
			return end
		}
		return skipValue(body, at)
	})
	return parts
}
