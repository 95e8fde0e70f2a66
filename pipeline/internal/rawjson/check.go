// Package rawjson checks raw message bodies against JSON's grammar in one
// pass, without building anything, and on the way records an Outline: where
// the members of the body's outer objects lie, so that a translator can
// find the few values it reads without reading the body again.
//
// Why it is hand-written: on the corpus, Check takes 12.7 µs a message,
// outline included, where encoding/json.Valid alone takes 44 µs and gives
// no outline (go test ./pipeline/internal/process -bench 'Stages/decode');
// the 31 µs it saves are about 12% of the worker's CPU per input end to
// end (0.24 to 0.28 ms per corpus input in pulsebench). FuzzOutlineMatchesParse
// and FuzzElementsMatchParse hold it to a full parse.
package rawjson

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// Fault is what Check found wrong with a body.
type Fault uint8

const (
	// OK: the body is JSON by RFC 8259's grammar, within MaxDepth.
	OK Fault = iota
	// Malformed: not JSON by RFC 8259's grammar.
	Malformed
	// TooDeep: objects and arrays nested beyond MaxDepth.
	TooDeep
	// Control: a raw control character inside a string.
	Control
	// NotUTF8: the body is not valid UTF-8.
	NotUTF8
)

// MaxDepth is the deepest nesting of objects and arrays Check accepts.
const MaxDepth = 64

// Check checks that a body is UTF-8 and, in one pass, JSON by its grammar,
// and returns the body's outline, or the first fault and its byte offset
// (and a nil outline). UTF-8 is checked first, as a whole (utf8.Valid);
// the grammar pass then takes bytes of 0x80 and above as part of a string.
// It stops at the first object or array nested deeper than MaxDepth, so a
// body nested 100,000 deep costs 65 bytes of reading.
//
// On UTF-8 bodies it accepts exactly what encoding/json.Valid accepts
// within the depth limit (FuzzDecode in package pipeline holds it to
// that), about twice as fast as fastjson's validator on corpus bodies.
func Check(b []byte) (*Outline, Fault, int) {
	if !utf8.Valid(b) {
		return nil, NotUTF8, firstInvalidUTF8(b)
	}
	var o outliner
	// containers holds one bit per open container, 1 for an object, the
	// innermost in bit 0; MaxDepth fits in it.
	var containers uint64
	depth := 0
	i := skipSpace(b, 0)

value:
	if i >= len(b) {
		return nil, Malformed, i
	}
	switch c := b[i]; {
	case c == '{':
		if depth++; depth > MaxDepth {
			return nil, TooDeep, i
		}
		containers = containers<<1 | 1
		if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
			i++
			depth--
			containers >>= 1
			goto next
		}
		goto key
	case c == '[':
		if depth++; depth > MaxDepth {
			return nil, TooDeep, i
		}
		containers <<= 1
		if i = skipSpace(b, i+1); i < len(b) && b[i] == ']' {
			i++
			depth--
			containers >>= 1
			goto next
		}
		goto value
	case c == '"':
		var f Fault
		if i, f = skipString(b, i); f != OK {
			return nil, f, i
		}
	case c == '-' || c-'0' <= 9:
		var ok bool
		if i, ok = skipNumber(b, i); !ok {
			return nil, Malformed, i
		}
	case c == 't':
		if !hasLiteral(b, i, "true") {
			return nil, Malformed, i
		}
		i += 4
	case c == 'f':
		if !hasLiteral(b, i, "false") {
			return nil, Malformed, i
		}
		i += 5
	case c == 'n':
		if !hasLiteral(b, i, "null") {
			return nil, Malformed, i
		}
		i += 4
	default:
		return nil, Malformed, i
	}

next: // after a value: a separator, a closing bracket, or the end
	if depth <= OutlineDepth {
		o.valueEnds(depth, i)
	}
	i = skipSpace(b, i)
	if depth == 0 {
		if i != len(b) {
			return nil, Malformed, i
		}
		return o.outline(b), OK, -1
	}
	if i >= len(b) {
		return nil, Malformed, i
	}
	switch inObject := containers&1 == 1; {
	case b[i] == ',':
		i = skipSpace(b, i+1)
		if inObject {
			goto key
		}
		goto value
	case inObject && b[i] == '}', !inObject && b[i] == ']':
		i++
		depth--
		containers >>= 1
		goto next
	default:
		return nil, Malformed, i
	}

key: // a member's name and colon, then its value
	if i >= len(b) || b[i] != '"' {
		return nil, Malformed, i
	}
	{
		start := i
		var f Fault
		if i, f = skipString(b, i); f != OK {
			return nil, f, i
		}
		keyEnd := i
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return nil, Malformed, i
		}
		i = skipSpace(b, i+1)
		// A member is outlined when every container from the top down to
		// its object is an object (the low depth bits of containers).
		if depth <= OutlineDepth && containers&(1<<depth-1) == 1<<depth-1 {
			o.member(depth, start, keyEnd, i)
		}
	}
	goto value
}

// skipSpace returns the offset of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && byteClass[b[i]]&isSpace != 0 {
		i++
	}
	return i
}

// skipString returns the offset just past the string that opens at i, or
// the fault and its offset.
func skipString(b []byte, i int) (int, Fault) {
	i++
	for {
		// Runs of ordinary characters, eight at a time, as one word.
		for i+8 <= len(b) {
			if special := specialBytes(binary.LittleEndian.Uint64(b[i:])); special != 0 {
				i += bits.TrailingZeros64(special) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && byteClass[b[i]]&isPlain != 0 {
			i++
		}
		if i >= len(b) {
			return i, Malformed
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, OK
		case c < 0x20:
			return i, Control
		}
		// A backslash: one of \" \\ \/ \b \f \n \r \t, or \u and four hex digits.
		if i+1 >= len(b) {
			return i, Malformed
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || byteClass[b[i+2]]&byteClass[b[i+3]]&byteClass[b[i+4]]&byteClass[b[i+5]]&isHex == 0 {
				return i, Malformed
			}
			i += 6
		default:
			return i, Malformed
		}
	}
}

// specialBytes marks the bytes of w (eight bytes, the first in the low
// bits) that end a run of plain string characters: a quote, a backslash
// or a control character. Each such byte's high bit is set, and the
// lowest set bit is always the first such byte's (a borrow only marks
// bytes above a real one).
func specialBytes(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	return ((w-ones*0x20)&^w | (quote-ones)&^quote | (backslash-ones)&^backslash) & highs
}

// skipNumber returns the offset just past the number that starts at i:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case b[i]-'1' <= 8:
		i = skipDigits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// Byte classes for Check.
const (
	isSpace     = 1 << iota // JSON white space
	isPlain                 // stands for itself inside a string
	isHex                   // a hex digit
	isDelimiter             // ends a number or literal: white space , : ] }
)

var byteClass = func() (t [256]uint8) {
	for _, c := range " \t\n\r" {
		t[c] |= isSpace
	}
	for c := 0x20; c < 256; c++ {
		if c != '"' && c != '\\' {
			t[c] |= isPlain
		}
	}
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] |= isHex
	}
	for _, c := range " \t\n\r,:]}" {
		t[c] |= isDelimiter
	}
	return t
}()

// firstInvalidUTF8 is the offset of the first byte of b that does not
// start a valid UTF-8 sequence, or len(b).
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}
