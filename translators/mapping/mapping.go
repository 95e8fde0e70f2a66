// Package mapping is a translator that needs no Go: the "mapping" table of
// its rule file says which raw messages become which outputs, with expr
// expressions for each routing-key word and payload field (see Spec).
// Everything else a pipeline does (drops, CC routes, waiting for
// artifacts, schemas) comes from rules and schemas as for any translator.
// rules/hgpushes.yaml normalizes hg.mozilla.org push notifications with it.
package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr/vm"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// Name is the translator's registered name.
const Name = "mapping"

func init() {
	translator.MustRegister(translator.Spec{
		Name:    Name,
		Summary: "any JSON stream to normalized messages, by the expr expressions of a rule file's mapping table",
		New:     New,
		// The mapping of hg.mozilla.org's pushes ships with it: its
		// schemas are schemas/hg/*.json, its rule file rules/hgpushes.yaml.
		Schemas: translator.Subset(schemas.Files, "hg"),
		Rules:   translator.Subset(rules.Builtin, "hgpushes.yaml"),
	})
}

// Translator maps raw messages by a compiled Spec. It is safe for
// concurrent use.
type Translator struct {
	spec *compiled
	vms  sync.Pool
}

// New compiles the "mapping" table of the pipeline's rule files.
func New(p translator.Params) (translator.Translator, error) {
	c, err := compileSpec(p.Tables["mapping"])
	if err != nil {
		return nil, err
	}
	t := &Translator{spec: c}
	t.vms.New = func() any { return &vm.VM{} }
	return t, nil
}

// Translate implements translator.Translator: every output whose when
// holds (or that has none) is made.
func (t *Translator) Translate(msg translator.Message) ([]translator.Output, error) {
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(msg.Body))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil || body == nil {
		return nil, translator.Refuse(translator.ClassMalformed, "the body is not a JSON object")
	}
	env := Env{Body: body, Input: Input{Exchange: msg.Exchange, RoutingKey: msg.RoutingKey}}
	machine := t.vms.Get().(*vm.VM)
	defer t.vms.Put(machine)
	var outs []translator.Output
	for _, o := range t.spec.outputs {
		if o.when != nil {
			ok, err := machine.Run(o.when, env)
			if err != nil {
				return nil, translator.Refuse("mapping", "output %s: when: %v", o.spec.Name, err)
			}
			if ok != true {
				continue
			}
		}
		out, err := t.output(machine, o, env)
		if err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	if len(outs) == 0 {
		if t.spec.refuseUnmatched {
			return nil, translator.Refuse("unmatched", "no output of the mapping matches this message")
		}
		return nil, translator.DropClass("unmatched", "no output of the mapping matches this message")
	}
	return outs, nil
}

func (t *Translator) output(machine *vm.VM, o compiledOutput, env Env) (translator.Output, error) {
	words := make([]string, len(o.spec.RoutingKey))
	for i, k := range o.spec.RoutingKey {
		if o.key[i] == nil {
			words[i] = k.Constant
			continue
		}
		v, err := machine.Run(o.key[i], env)
		if err != nil {
			return translator.Output{}, translator.Refuse("mapping", "output %s: routing key word %s: %v", o.spec.Name, k.Name, err)
		}
		word := text(v)
		if word == "" || strings.Contains(word, ".") {
			return translator.Output{}, translator.Refuse("mapping", "output %s: routing key word %s is %q; it must be one non-empty word without dots", o.spec.Name, k.Name, word)
		}
		words[i] = word
	}
	payload := make(map[string]any, len(o.fields))
	for i, field := range o.fields {
		v, err := machine.Run(o.payload[i], env)
		if err != nil {
			return translator.Output{}, translator.Refuse("mapping", "output %s: payload.%s: %v", o.spec.Name, field, err)
		}
		payload[field] = v
	}
	return translator.Output{RoutingKey: strings.Join(words, "."), Payload: payload, Schema: o.spec.Schema, To: o.spec.To}, nil
}

// text renders a routing-key value: strings as they are, numbers in
// decimal.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// Describe implements translator.Describer from the mapping's outputs.
func (t *Translator) Describe() []translator.OutputDoc {
	var docs []translator.OutputDoc
	for _, o := range t.spec.outputs {
		doc := translator.OutputDoc{To: o.spec.To, Name: o.spec.Name, Title: o.spec.Title, Description: o.spec.Description, Schema: o.spec.Schema}
		for _, k := range o.spec.RoutingKey {
			doc.RoutingKey = append(doc.RoutingKey, translator.KeyField{Name: k.Name, Summary: k.Summary, Constant: k.Constant, Required: true})
		}
		docs = append(docs, doc)
	}
	return docs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var _ translator.Describer = (*Translator)(nil)
