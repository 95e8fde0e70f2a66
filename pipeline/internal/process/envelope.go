package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
)

// Body encodes the published body of an output in its exchange's envelope:
// the payload alone (bare), or the payload with a _meta object
// (mozillapulse: exchange, routing_key, serializer, sent). sent is the time
// of publishing.
//
// The bytes are exactly what encoding/json.Marshal writes for the same
// values (object keys sorted, HTML characters escaped), without its
// reflection: payloads are built of JSON's Go types, and anything else is
// handed to encoding/json. Unlike encoding/json, it refuses a number that
// consumers cannot read exactly (an *UnsafeNumberError).
//
// Why it is hand-written: it checks every number as it writes it, and it
// pays: 7.5 µs a corpus message against 33 µs for encoding/json.Marshal of
// the same envelope (go test ./pipeline/internal/process -bench
// 'Stages/encode'), about 10% of the worker's CPU per input end to end.
func Body(r Routed, sent time.Time) ([]byte, error) {
	scratch := scratchBuffers.Get().(*[]byte)
	defer scratchBuffers.Put(scratch)
	buf, err := appendBody((*scratch)[:0], r, sent)
	if err != nil {
		return nil, err
	}
	*scratch = buf
	// The body is kept until the broker confirms it: copy it out at its
	// size rather than hold a scratch buffer's.
	return bytes.Clone(buf), nil
}

// scratchBuffers hold bodies while they are encoded.
var scratchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

func appendBody(buf []byte, r Routed, sent time.Time) ([]byte, error) {
	if r.Output.Envelope == config.EnvelopeBare {
		return appendJSON(buf, r.Payload)
	}
	buf = append(buf, `{"payload":`...)
	buf, err := appendJSON(buf, r.Payload)
	if err != nil {
		return nil, err
	}
	buf = append(buf, `,"_meta":{"exchange":`...)
	buf = appendJSONString(buf, r.Output.Exchange)
	buf = append(buf, `,"routing_key":`...)
	buf = appendJSONString(buf, r.RoutingKey)
	// RFC 3339 text holds nothing JSON escapes.
	buf = append(buf, `,"serializer":"json","sent":"`...)
	buf = sent.UTC().AppendFormat(buf, time.RFC3339)
	return append(buf, `"}}`...), nil
}

// appendJSON appends v encoded as encoding/json would.
func appendJSON(buf []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case bool:
		return strconv.AppendBool(buf, v), nil
	case string:
		return appendJSONString(buf, v), nil
	case int:
		if err := checkSafeInt(int64(v)); err != nil {
			return nil, err
		}
		return strconv.AppendInt(buf, int64(v), 10), nil
	case int64:
		if err := checkSafeInt(v); err != nil {
			return nil, err
		}
		return strconv.AppendInt(buf, v, 10), nil
	case int8, int16, int32, uint8, uint16, uint32:
		// Always within ±2^53.
		return strconv.AppendInt(buf, reflect.ValueOf(v).Convert(reflect.TypeFor[int64]()).Int(), 10), nil
	case uint:
		return appendUint(buf, uint64(v))
	case uint64:
		return appendUint(buf, v)
	case json.Number:
		if v == "" {
			return append(buf, '0'), nil
		}
		if !validNumber(string(v)) {
			break
		}
		if err := checkSafeNumber(string(v)); err != nil {
			return nil, err
		}
		return append(buf, v...), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			break
		}
		// encoding/json's format: like ES6, exponents only outside [1e-6, 1e21).
		format := byte('f')
		if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
			format = 'e'
		}
		buf = strconv.AppendFloat(buf, v, format, -1, 64)
		if format == 'e' {
			// e-09 -> e-9
			if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
				buf[n-2] = buf[n-1]
				buf = buf[:n-1]
			}
		}
		return buf, nil
	case map[string]any:
		if v == nil {
			return append(buf, "null"...), nil
		}
		return appendObject(buf, v)
	case []any:
		if v == nil {
			return append(buf, "null"...), nil
		}
		buf = append(buf, '[')
		for i, item := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendJSON(buf, item); err != nil {
				return nil, within(err, "["+strconv.Itoa(i)+"]")
			}
		}
		return append(buf, ']'), nil
	}
	// []string, an invalid json.Number or float (for encoding/json's
	// error), and any other type.
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, data...), nil
}

// appendObject appends an object with its members sorted by key, as
// encoding/json does (byte order). The members are read from the map once,
// with their values, and their order is sorted apart from them, on the
// first eight bytes of the keys.
func appendObject(buf []byte, m map[string]any) ([]byte, error) {
	var (
		roomMembers [objectRoom]objectMember
		roomOrder   [objectRoom]memberRank
		members     []objectMember
		order       []memberRank
	)
	if len(m) <= objectRoom {
		// Stored by index into the arrays, which the compiler knows are
		// on the stack, the members' pointers need no write barriers
		// (append's result could be anywhere, and would).
		n := 0
		for k, v := range m {
			roomMembers[n] = objectMember{key: k, value: v}
			roomOrder[n] = memberRank{prefix: keyPrefix(k), index: int32(n)}
			n++
		}
		members, order = roomMembers[:n], roomOrder[:n]
	} else {
		members, order = make([]objectMember, 0, len(m)), make([]memberRank, 0, len(m))
		for k, v := range m {
			order = append(order, memberRank{prefix: keyPrefix(k), index: int32(len(members))})
			members = append(members, objectMember{key: k, value: v})
		}
	}
	sortRanks(order, members)
	buf = append(buf, '{')
	for i, r := range order {
		if i > 0 {
			buf = append(buf, ',')
		}
		member := &members[r.index]
		buf = appendJSONString(buf, member.key)
		buf = append(buf, ':')
		var err error
		if buf, err = appendJSON(buf, member.value); err != nil {
			return nil, within(err, member.key)
		}
	}
	return append(buf, '}'), nil
}

// objectMember is one member of an object being encoded.
type objectMember struct {
	key   string
	value any
}

// memberRank places a member in the sorted order: by prefix, the key's
// first eight bytes big-endian and zero-padded, whose order is the keys'
// where they differ, and by the whole key where they do not.
type memberRank struct {
	prefix uint64
	index  int32
}

func keyPrefix(k string) uint64 {
	if len(k) >= 8 {
		// One load and a byte swap.
		return uint64(k[0])<<56 | uint64(k[1])<<48 | uint64(k[2])<<40 | uint64(k[3])<<32 |
			uint64(k[4])<<24 | uint64(k[5])<<16 | uint64(k[6])<<8 | uint64(k[7])
	}
	var p uint64
	for i := range min(len(k), 8) {
		p |= uint64(k[i]) << (56 - 8*i)
	}
	return p
}

// objectRoom is how many members of an object appendObject holds on the
// stack and sorts by insertion: the tens of a normalized payload.
const objectRoom = 48

// sortRanks sorts the ranks of members by key: by insertion up to
// objectRoom members (the ranks hold no pointers, so moving them is
// cheap), by slices.SortFunc beyond.
func sortRanks(order []memberRank, members []objectMember) {
	less := func(a, b memberRank) bool {
		return a.prefix < b.prefix || a.prefix == b.prefix && members[a.index].key < members[b.index].key
	}
	if len(order) > objectRoom {
		slices.SortFunc(order, func(a, b memberRank) int {
			switch {
			case less(a, b):
				return -1
			case less(b, a):
				return 1
			}
			return 0
		})
		return
	}
	for i := 1; i < len(order); i++ {
		r := order[i]
		j := i
		for ; j > 0 && less(r, order[j-1]); j-- {
			order[j] = order[j-1]
		}
		order[j] = r
	}
}

// MaxSafeInteger is the largest integer every JSON consumer reads exactly:
// 2^53, past which a double (JavaScript's only number, and what most
// decoders read numbers into) skips integers.
const MaxSafeInteger = 1 << 53

// UnsafeNumberError is an integer beyond ±MaxSafeInteger, or a number too
// large for a double, in an output: consumers would read another number,
// or fail.
type UnsafeNumberError struct {
	// Path is where it is in the payload, such as "build.number" or
	// "locales[3]".
	Path string
	// Text is the number as written.
	Text string
}

// Error names the number, where it is, and why consumers cannot read it.
func (e *UnsafeNumberError) Error() string {
	return fmt.Sprintf("%s is %.40s, which JSON consumers cannot read exactly (integers must stay within ±2^53, numbers within a double's range)", e.Path, e.Text)
}

// within prefixes the path of an *UnsafeNumberError with the member or
// element it was found in.
func within(err error, step string) error {
	var u *UnsafeNumberError
	if !errors.As(err, &u) {
		return err
	}
	switch {
	case u.Path == "":
		u.Path = step
	case u.Path[0] == '[':
		u.Path = step + u.Path
	default:
		u.Path = step + "." + u.Path
	}
	return u
}

// appendUint appends an unsigned integer, refusing one beyond
// MaxSafeInteger as checkSafeInt does a signed one.
func appendUint(buf []byte, n uint64) ([]byte, error) {
	if n > MaxSafeInteger {
		return nil, &UnsafeNumberError{Text: strconv.FormatUint(n, 10)}
	}
	return strconv.AppendUint(buf, n, 10), nil
}

func checkSafeInt(n int64) error {
	if n > MaxSafeInteger || n < -MaxSafeInteger {
		return &UnsafeNumberError{Text: strconv.FormatInt(n, 10)}
	}
	return nil
}

// checkSafeNumber checks a valid JSON number's text: an integer within
// ±MaxSafeInteger, or a fraction or exponent that a double holds.
func checkSafeNumber(s string) error {
	digits := strings.TrimPrefix(s, "-")
	if strings.ContainsAny(digits, ".eE") {
		if f, err := strconv.ParseFloat(s, 64); err != nil || math.IsInf(f, 0) {
			return &UnsafeNumberError{Text: s}
		}
		return nil
	}
	if len(digits) < 16 {
		return nil
	}
	if n, err := strconv.ParseUint(digits, 10, 64); err != nil || n > MaxSafeInteger {
		return &UnsafeNumberError{Text: s}
	}
	return nil
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string with encoding/json's
// escaping: quotes, backslashes and control characters, <, > and & as
// \u003c, \u003e and \u0026, U+2028 and U+2029, and invalid UTF-8 as
// \ufffd.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		// Runs of bytes that stand for themselves, eight at a time when
		// they can be.
		for i+8 <= len(s) && plainInJSON[s[i]]&plainInJSON[s[i+1]]&plainInJSON[s[i+2]]&plainInJSON[s[i+3]]&
			plainInJSON[s[i+4]]&plainInJSON[s[i+5]]&plainInJSON[s[i+6]]&plainInJSON[s[i+7]] != 0 {
			i += 8
		}
		if i == len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if plainInJSON[b] != 0 {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '\\', '"':
				buf = append(buf, '\\', b)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// plainInJSON is 1 for the bytes appendJSONString writes as they are:
// ASCII but for control characters, the quote, the backslash, <, > and &.
var plainInJSON = func() (t [256]uint8) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		if b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
			t[b] = 1
		}
	}
	return t
}()
