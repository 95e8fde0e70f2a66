package buildbot

import (
	"encoding/json"
	"fmt"

	"github.com/valyala/fastjson"

	"github.com/pulsetranslator/pulsetranslator/pipeline/rawjson"
)

// parsers parse the parts of a raw body the translator reads.
var parsers fastjson.ParserPool

// parseRawMessage reads the parts of a raw Buildbot message the translator
// uses: _meta.routing_key, payload.build.properties and
// payload.build.results. It finds them in the body's outline and parses
// only them with p (the build steps, source stamp and times, most of a
// body, are never read); the properties' values stay p's until decoded.
// Like a parse, it takes the first of members with the same name.
func parseRawMessage(p *fastjson.Parser, outline *rawjson.Outline) (rawMessage, error) {
	var raw rawMessage
	if span, ok := outline.Find("_meta"); ok {
		meta, err := p.ParseBytes(span)
		if err != nil {
			return raw, fmt.Errorf("_meta: %v", err)
		}
		if meta.Type() != fastjson.TypeNull {
			if meta.Type() != fastjson.TypeObject {
				return raw, fmt.Errorf("_meta is %s, not an object", kindOf(meta))
			}
			raw.Meta = &struct {
				RoutingKey string `json:"routing_key"`
			}{}
			if key := meta.Get("routing_key"); key != nil && key.Type() != fastjson.TypeNull {
				b, err := key.StringBytes()
				if err != nil {
					return raw, fmt.Errorf("_meta.routing_key is %s, not a string", kindOf(key))
				}
				raw.Meta.RoutingKey = string(b)
			}
		}
	}
	if span, ok := outline.Find("payload", "build", "results"); ok {
		results, err := p.ParseBytes(span)
		if err != nil {
			return raw, fmt.Errorf("payload.build.results: %v", err)
		}
		raw.Payload.Build.Results = decode(results)
	}
	span, ok := outline.Find("payload", "build", "properties")
	if !ok {
		return raw, nil
	}
	// A parser's values live until its next parse: the properties are
	// parsed last.
	props, err := p.ParseBytes(span)
	if err != nil {
		return raw, fmt.Errorf("payload.build.properties: %v", err)
	}
	if props.Type() == fastjson.TypeNull {
		return raw, nil
	}
	items, err := props.Array()
	if err != nil {
		return raw, fmt.Errorf("payload.build.properties is %s, not a list", kindOf(props))
	}
	raw.Payload.Build.Properties = make([]property, 0, len(items))
	for _, item := range items {
		triple, err := item.Array()
		if err != nil {
			return raw, fmt.Errorf("a build property is %s, not a [name, value, source] list", kindOf(item))
		}
		if len(triple) < 2 {
			return raw, fmt.Errorf("a build property has %d elements, want [name, value, source]", len(triple))
		}
		name, err := triple[0].StringBytes()
		if err != nil {
			return raw, fmt.Errorf("a build property name is not a string: %s", triple[0])
		}
		raw.Payload.Build.Properties = append(raw.Payload.Build.Properties, property{name: name, raw: triple[1]})
	}
	return raw, nil
}

// decode turns a parsed value into Go values as encoding/json would
// decode it into an any with UseNumber.
func decode(v *fastjson.Value) any {
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
			out[i] = decode(item)
		}
		return out
	case fastjson.TypeObject:
		o := v.GetObject()
		out := make(map[string]any, o.Len())
		o.Visit(func(key []byte, item *fastjson.Value) { out[string(key)] = decode(item) })
		return out
	}
	return nil
}

// kindOf names the JSON type of a parsed value.
func kindOf(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeObject:
		return "an object"
	case fastjson.TypeArray:
		return "a list"
	case fastjson.TypeString:
		return "a string"
	case fastjson.TypeNumber:
		return "a number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "a boolean"
	}
	return "null"
}
