package buildbot

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/valyala/fastjson"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// parseRawMessage reads the parts of a raw Buildbot message the translator
// uses: _meta.routing_key, payload.build.results and the names and raw
// values of payload.build.properties. It looks them up (Message.Lookup)
// and reads only them: the build steps, source stamp and times, most of a
// body, are never read, and a property's value is decoded only where the
// translation reads it. Like a parse, it takes the first of members with
// the same name. The properties' list is pooled: the caller releases raw
// when it is done with it, errors included. A body that is not JSON gives
// a *translator.BodyError.
func parseRawMessage(msg translator.Message) (rawMessage, error) {
	var raw rawMessage
	meta, ok, err := msg.Lookup("_meta")
	if err != nil {
		return raw, err
	}
	find := func(path ...string) ([]byte, bool) {
		v, found, _ := msg.Lookup(path...)
		return v, found
	}
	if ok && meta[0] != 'n' {
		if meta[0] != '{' {
			return raw, fmt.Errorf("_meta is %s, not an object", kindOf(meta))
		}
		raw.Meta = &struct {
			RoutingKey string `json:"routing_key"`
		}{}
		if key, ok := find("_meta", "routing_key"); ok && key[0] != 'n' {
			s, isText := translator.Unquote(key)
			if !isText {
				return raw, fmt.Errorf("_meta.routing_key is %s, not a string", kindOf(key))
			}
			raw.Meta.RoutingKey = string(s)
		}
	}
	if results, ok := find("payload", "build", "results"); ok {
		raw.Payload.Build.Results = decode(results)
	}
	props, ok := find("payload", "build", "properties")
	if !ok || props[0] == 'n' {
		return raw, nil
	}
	if props[0] != '[' {
		return raw, fmt.Errorf("payload.build.properties is %s, not a list", kindOf(props))
	}
	raw.list = propertyLists.Get().(*[]property)
	raw.Payload.Build.Properties = (*raw.list)[:0]
	for item := range translator.Elements(props) {
		if item[0] != '[' {
			return raw, fmt.Errorf("a build property is %s, not a [name, value, source] list", kindOf(item))
		}
		// The name and the value; the source is not read.
		var nameValue [2][]byte
		n := 0
		for part := range translator.Elements(item) {
			nameValue[n] = part
			if n++; n == len(nameValue) {
				break
			}
		}
		if n < len(nameValue) {
			return raw, fmt.Errorf("a build property has %d elements, want [name, value, source]", n)
		}
		name, isText := translator.Unquote(nameValue[0])
		if !isText {
			return raw, fmt.Errorf("a build property name is not a string: %.100s", nameValue[0])
		}
		raw.Payload.Build.Properties = append(raw.Payload.Build.Properties, property{name: name, raw: nameValue[1]})
	}
	return raw, nil
}

// propertyLists hold the properties of messages being translated (a
// message has tens); release returns a message's list.
var propertyLists = sync.Pool{New: func() any { l := make([]property, 0, 64); return &l }}

// release returns raw's property list to propertyLists, cleared so that
// the pool holds no body. raw is not read again.
func (raw *rawMessage) release() {
	if raw.list == nil {
		return
	}
	l := raw.Payload.Build.Properties
	clear(l)
	*raw.list = l[:0] // grown past its room, the list is kept at its size
	propertyLists.Put(raw.list)
	raw.list, raw.Payload.Build.Properties = nil, nil
}

// decode turns a raw value of the checked body into Go values as
// encoding/json would decode it into an any with UseNumber: strings,
// numbers and literals straight from their bytes, lists and objects
// through a parse.
func decode(raw []byte) any {
	switch raw[0] {
	case '"':
		s, _ := translator.Unquote(raw)
		return string(s)
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	case '[', '{':
		p := parsers.Get()
		defer parsers.Put(p)
		v, err := p.ParseBytes(raw)
		if err != nil {
			return nil // not from a checked body
		}
		return decodeParsed(v)
	}
	return json.Number(raw)
}

// parsers parse the lists and objects decode meets.
var parsers fastjson.ParserPool

// decodeParsed turns a parsed value into Go values as encoding/json would
// decode it into an any with UseNumber.
func decodeParsed(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNumber:
		return json.Number(v.MarshalTo(nil))
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeArray:
		items := v.GetArray()
		out := make([]any, len(items))
		for i, item := range items {
			out[i] = decodeParsed(item)
		}
		return out
	case fastjson.TypeObject:
		o := v.GetObject()
		out := make(map[string]any, o.Len())
		o.Visit(func(key []byte, item *fastjson.Value) { out[string(key)] = decodeParsed(item) })
		return out
	}
	return nil
}

// kindOf names the JSON type of a raw value by its first byte.
func kindOf(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
