package schemas

import (
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"
)

// fastSchema is a precompiled check of a schema written in the small subset
// of JSON Schema the shipped schemas use (type, properties, required,
// additionalProperties, enum, items, minLength, maxLength, pattern,
// minimum, maximum). It only ever answers "valid" or "not sure": on "not
// sure" the full validator decides and says why, so the fast path can make
// validation quicker but never more lenient. A schema with any other
// keyword gets no fast path at all.
//
// Why it is kept: 1.25 µs and no allocation per corpus output, against
// 16 µs and 245 allocations for jsonschema alone (go test ./schemas -bench
// Validate); at about three outputs per input that is some 45 µs, about
// 17% of the worker's CPU per input end to end. TestFastPathNeverMoreLenient
// holds it to the full validator.
type fastSchema struct {
	types typeSet
	// properties are the checks of named properties, each marked when it
	// is required too; requiredKnown counts those, and requiredElse are
	// the required names with no check of their own.
	properties           map[string]propertyCheck
	requiredKnown        int
	requiredElse         []string
	closed               bool // additionalProperties: false
	minLength, maxLength int  // -1: none
	pattern              *regexp.Regexp
	minimum, maximum     *float64
	enum                 []any
	items                *fastSchema
}

// propertyCheck is the check of one named property of an object.
type propertyCheck struct {
	schema   *fastSchema
	required bool
}

// typeSet is a set of JSON types; 0 means any.
type typeSet uint8

const (
	typeNull typeSet = 1 << iota
	typeBoolean
	typeString
	typeNumber
	typeInteger
	typeObject
	typeArray
)

var typeNames = map[string]typeSet{
	"null": typeNull, "boolean": typeBoolean, "string": typeString, "number": typeNumber,
	"integer": typeInteger, "object": typeObject, "array": typeArray,
}

// annotations are keywords that never affect validity.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true, "examples": true, "default": true,
}

// compileFast builds the fast check of a schema document, or returns nil
// when the schema uses anything outside the subset.
func compileFast(raw any) *fastSchema {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil
	}
	f := &fastSchema{minLength: -1, maxLength: -1}
	var required []string
	for key, value := range m {
		switch {
		case annotations[key]:
		case key == "type":
			if f.types = compileTypes(value); f.types == 0 {
				return nil
			}
		case key == "properties":
			props, ok := value.(map[string]any)
			if !ok {
				return nil
			}
			f.properties = make(map[string]propertyCheck, len(props))
			for name, sub := range props {
				check := compileFast(sub)
				if check == nil {
					return nil
				}
				f.properties[name] = propertyCheck{schema: check}
			}
		case key == "required":
			list, ok := value.([]any)
			if !ok {
				return nil
			}
			for _, item := range list {
				name, ok := item.(string)
				if !ok {
					return nil
				}
				required = append(required, name)
			}
		case key == "additionalProperties":
			allowed, ok := value.(bool)
			if !ok {
				return nil
			}
			f.closed = !allowed
		case key == "minLength" || key == "maxLength":
			n, ok := value.(float64)
			if !ok || n < 0 || n != math.Trunc(n) {
				return nil
			}
			if key == "minLength" {
				f.minLength = int(n)
			} else {
				f.maxLength = int(n)
			}
		case key == "pattern":
			source, ok := value.(string)
			if !ok {
				return nil
			}
			re, err := regexp.Compile(source)
			if err != nil {
				return nil
			}
			f.pattern = re
		case key == "minimum" || key == "maximum":
			n, ok := value.(float64)
			if !ok || !exactBound(n) {
				return nil
			}
			if key == "minimum" {
				f.minimum = &n
			} else {
				f.maximum = &n
			}
		case key == "enum":
			list, ok := value.([]any)
			if !ok || len(list) == 0 {
				return nil
			}
			for _, item := range list {
				switch item.(type) {
				case string, float64, bool, nil:
				default:
					return nil
				}
			}
			f.enum = list
		case key == "items":
			if f.items = compileFast(value); f.items == nil {
				return nil
			}
		default:
			return nil
		}
	}
	for _, name := range required {
		switch prop, known := f.properties[name]; {
		case known && !prop.required:
			prop.required = true
			f.properties[name] = prop
			f.requiredKnown++
		case !known && !slices.Contains(f.requiredElse, name):
			f.requiredElse = append(f.requiredElse, name)
		}
	}
	return f
}

func compileTypes(value any) typeSet {
	switch v := value.(type) {
	case string:
		return typeNames[v]
	case []any:
		var set typeSet
		for _, item := range v {
			name, ok := item.(string)
			if !ok || typeNames[name] == 0 {
				return 0
			}
			set |= typeNames[name]
		}
		return set
	}
	return 0
}

// valid reports whether v certainly satisfies the schema; false means "not
// sure".
func (f *fastSchema) valid(v any) bool {
	t, number, ok := kind(v)
	if !ok {
		return false
	}
	if f.types != 0 && f.types&t == 0 && !(t == typeInteger && f.types&typeNumber != 0) {
		return false
	}
	if f.enum != nil && !inEnum(f.enum, v, number, t) {
		return false
	}
	switch t {
	case typeString:
		s := v.(string)
		if f.minLength >= 0 || f.maxLength >= 0 {
			n := utf8.RuneCountInString(s)
			if (f.minLength >= 0 && n < f.minLength) || (f.maxLength >= 0 && n > f.maxLength) {
				return false
			}
		}
		if f.pattern != nil && !f.pattern.MatchString(s) {
			return false
		}
	case typeNumber, typeInteger:
		if (f.minimum != nil && number < *f.minimum) || (f.maximum != nil && number > *f.maximum) {
			return false
		}
	case typeObject:
		m := v.(map[string]any)
		requiredSeen := 0
		for name, value := range m {
			prop, known := f.properties[name]
			if !known {
				if f.closed {
					return false
				}
				continue
			}
			if prop.required {
				requiredSeen++
			}
			if !prop.schema.valid(value) {
				return false
			}
		}
		if requiredSeen != f.requiredKnown {
			return false
		}
		for _, name := range f.requiredElse {
			if _, ok := m[name]; !ok {
				return false
			}
		}
	case typeArray:
		if f.items != nil {
			for _, item := range v.([]any) {
				if !f.items.valid(item) {
					return false
				}
			}
		}
	}
	return true
}

// kind classifies a Go value as a JSON type, with its numeric value; ok is
// false for a Go type the fast path does not know.
func kind(v any) (t typeSet, number float64, ok bool) {
	switch v := v.(type) {
	case nil:
		return typeNull, 0, true
	case bool:
		return typeBoolean, 0, true
	case string:
		return typeString, 0, true
	case map[string]any:
		return typeObject, 0, true
	case []any:
		return typeArray, 0, true
	case float64:
		return numberKind(v)
	case int:
		return integerKind(int64(v))
	case int64:
		return integerKind(v)
	case int8:
		return typeInteger, float64(v), true
	case int16:
		return typeInteger, float64(v), true
	case int32:
		return typeInteger, float64(v), true
	case uint8:
		return typeInteger, float64(v), true
	case uint16:
		return typeInteger, float64(v), true
	case uint32:
		return typeInteger, float64(v), true
	case uint:
		if uint64(v) > maxExact {
			return 0, 0, false
		}
		return typeInteger, float64(v), true
	case uint64:
		if v > maxExact {
			return 0, 0, false
		}
		return typeInteger, float64(v), true
	case json.Number:
		if significantDigits(string(v)) > 15 {
			// A double may not hold it: the full validator, which
			// compares exact values, decides.
			return 0, 0, false
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return 0, 0, false
		}
		return numberKind(f)
	}
	return 0, 0, false
}

// maxExact is 2^53: every integer within ±maxExact is a double exactly,
// so the fast path compares such integers as jsonschema compares their
// exact values.
const maxExact = 1 << 53

// integerKind classifies an integer; one beyond ±maxExact, which a double
// would round, is "not sure".
func integerKind(n int64) (typeSet, float64, bool) {
	if n > maxExact || n < -maxExact {
		return 0, 0, false
	}
	return typeInteger, float64(n), true
}

// significantDigits counts the digits of a JSON number's mantissa, its
// leading zeros left out. A decimal of at most 15 makes a double that
// keeps its value's order against any other such decimal.
func significantDigits(s string) int {
	n, leading := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 'e' || c == 'E':
			return n
		case c >= '1' && c <= '9':
			leading = false
			n++
		case c == '0' && !leading:
			n++
		}
	}
	return n
}

// exactBound reports whether a schema's minimum or maximum is a double
// that compares with the values the fast path takes as their exact values
// do: an integer within ±maxExact, or a fraction of at most 15
// significant digits. A schema with another bound gets no fast path.
func exactBound(b float64) bool {
	if b == math.Trunc(b) {
		return math.Abs(b) <= maxExact
	}
	return significantDigits(strconv.FormatFloat(b, 'g', -1, 64)) <= 15
}

func numberKind(f float64) (typeSet, float64, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, 0, false
	}
	if f == math.Trunc(f) {
		return typeInteger, f, true
	}
	return typeNumber, f, true
}

func inEnum(enum []any, v any, number float64, t typeSet) bool {
	for _, item := range enum {
		switch e := item.(type) {
		case nil:
			if t == typeNull {
				return true
			}
		case bool:
			if b, ok := v.(bool); ok && b == e {
				return true
			}
		case string:
			if s, ok := v.(string); ok && s == e {
				return true
			}
		case float64:
			if (t == typeNumber || t == typeInteger) && number == e {
				return true
			}
		}
	}
	return false
}
