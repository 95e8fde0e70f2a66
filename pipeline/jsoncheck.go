package pipeline

// jsonFault is what checkJSON found wrong with a body.
type jsonFault uint8

const (
	jsonOK        jsonFault = iota
	jsonMalformed           // not JSON by RFC 8259's grammar
	jsonTooDeep             // objects and arrays nested beyond MaxJSONDepth
	jsonControl             // a raw control character inside a string
)

// checkJSON checks a UTF-8 body against JSON's grammar in one pass, without
// building anything, and returns the first fault and its byte offset. It
// stops at the first object or array nested deeper than MaxJSONDepth, so a
// body nested 100,000 deep costs 65 bytes of reading. UTF-8 itself is
// checked before (utf8.Valid); bytes of 0x80 and above are taken as part
// of a string.
//
// It accepts exactly what encoding/json.Valid accepts within the depth
// limit (FuzzDecode holds it to that), about twice as fast as fastjson's
// validator on corpus bodies.
func checkJSON(b []byte) (jsonFault, int) {
	// containers holds one bit per open container, 1 for an object, the
	// innermost in bit 0; MaxJSONDepth fits in it.
	var containers uint64
	depth := 0
	i := skipSpace(b, 0)

value:
	if i >= len(b) {
		return jsonMalformed, i
	}
	switch c := b[i]; {
	case c == '{':
		if depth++; depth > MaxJSONDepth {
			return jsonTooDeep, i
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
		if depth++; depth > MaxJSONDepth {
			return jsonTooDeep, i
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
		var f jsonFault
		if i, f = skipString(b, i); f != jsonOK {
			return f, i
		}
	case c == '-' || c-'0' <= 9:
		var ok bool
		if i, ok = skipNumber(b, i); !ok {
			return jsonMalformed, i
		}
	case c == 't':
		if !hasLiteral(b, i, "true") {
			return jsonMalformed, i
		}
		i += 4
	case c == 'f':
		if !hasLiteral(b, i, "false") {
			return jsonMalformed, i
		}
		i += 5
	case c == 'n':
		if !hasLiteral(b, i, "null") {
			return jsonMalformed, i
		}
		i += 4
	default:
		return jsonMalformed, i
	}

next: // after a value: a separator, a closing bracket, or the end
	i = skipSpace(b, i)
	if depth == 0 {
		if i != len(b) {
			return jsonMalformed, i
		}
		return jsonOK, -1
	}
	if i >= len(b) {
		return jsonMalformed, i
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
		return jsonMalformed, i
	}

key: // a member's name and colon, then its value
	if i >= len(b) || b[i] != '"' {
		return jsonMalformed, i
	}
	{
		var f jsonFault
		if i, f = skipString(b, i); f != jsonOK {
			return f, i
		}
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
		return jsonMalformed, i
	}
	i = skipSpace(b, i+1)
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
func skipString(b []byte, i int) (int, jsonFault) {
	i++
	for {
		// Runs of ordinary characters, eight at a time when they can be.
		for i+8 <= len(b) && byteClass[b[i]]&isPlain != 0 && byteClass[b[i+1]]&isPlain != 0 &&
			byteClass[b[i+2]]&isPlain != 0 && byteClass[b[i+3]]&isPlain != 0 &&
			byteClass[b[i+4]]&isPlain != 0 && byteClass[b[i+5]]&isPlain != 0 &&
			byteClass[b[i+6]]&isPlain != 0 && byteClass[b[i+7]]&isPlain != 0 {
			i += 8
		}
		for i < len(b) && byteClass[b[i]]&isPlain != 0 {
			i++
		}
		if i >= len(b) {
			return i, jsonMalformed
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, jsonOK
		case c < 0x20:
			return i, jsonControl
		}
		// A backslash: one of \" \\ \/ \b \f \n \r \t, or \u and four hex digits.
		if i+1 >= len(b) {
			return i, jsonMalformed
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || byteClass[b[i+2]]&byteClass[b[i+3]]&byteClass[b[i+4]]&byteClass[b[i+5]]&isHex == 0 {
				return i, jsonMalformed
			}
			i += 6
		default:
			return i, jsonMalformed
		}
	}
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

// Byte classes for checkJSON.
const (
	isSpace = 1 << iota // JSON white space
	isPlain             // stands for itself inside a string
	isHex               // a hex digit
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
	return t
}()
