package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/pulsetranslator/pulsetranslator/rules"
)

// Spec is the "mapping" table of a rule file: what the translator
// publishes, all of it expr expressions over the raw message.
//
//	tables:
//	  mapping:
//	    unmatched: drop            # or refuse: a message no output matches
//	    outputs:
//	      - name: push
//	        title: A push
//	        description: ...
//	        when: 'body.payload.type == "changegroup.1"'
//	        schema: hg/push.json
//	        to: ""                 # a pipeline output other than the first
//	        routing_key:
//	          - {name: kind, constant: push, summary: ...}
//	          - {name: repo, value: 'body.payload.data.repo_url', summary: ...}
//	        payload:
//	          repo_url: 'body.payload.data.repo_url'
//
// Expressions read body (the raw message, decoded JSON) and input
// (exchange and routing_key of the delivery).
type Spec struct {
	Unmatched string       `json:"unmatched"`
	Outputs   []OutputSpec `json:"outputs"`
}

// OutputSpec is one kind of output.
type OutputSpec struct {
	Name        string            `json:"name"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	When        string            `json:"when"`
	Schema      string            `json:"schema"`
	To          string            `json:"to"`
	RoutingKey  []KeySpec         `json:"routing_key"`
	Payload     map[string]string `json:"payload"`
}

// KeySpec is one word of the routing key: a constant or an expression.
type KeySpec struct {
	Name     string `json:"name"`
	Summary  string `json:"summary"`
	Constant string `json:"constant"`
	Value    string `json:"value"`
}

// Env is what a mapping expression can read.
type Env struct {
	Body  map[string]any `expr:"body"`
	Input Input          `expr:"input"`
}

// Input describes the delivery.
type Input struct {
	Exchange   string `expr:"exchange"`
	RoutingKey string `expr:"routing_key"`
}

// compiled is a Spec with its expressions compiled.
type compiled struct {
	refuseUnmatched bool
	outputs         []compiledOutput
}

type compiledOutput struct {
	spec    OutputSpec
	when    *vm.Program
	key     []*vm.Program // nil for a constant word
	fields  []string
	payload []*vm.Program
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// compileSpec reads the mapping table and compiles every expression; every
// problem is reported, naming the output and the field.
func compileSpec(table any) (*compiled, error) {
	if table == nil {
		return nil, errors.New(`the pipeline's rule files have no "mapping" table; add one (see translators/mapping)`)
	}
	data, err := json.Marshal(table)
	if err != nil {
		return nil, fmt.Errorf("mapping table: %w", err)
	}
	var spec Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("mapping table: %w", err)
	}
	c := &compiled{}
	var errs []error
	switch spec.Unmatched {
	case "", "drop":
	case "refuse":
		c.refuseUnmatched = true
	default:
		errs = append(errs, fmt.Errorf("mapping.unmatched %q: use drop or refuse", spec.Unmatched))
	}
	if len(spec.Outputs) == 0 {
		errs = append(errs, errors.New("mapping.outputs: at least one output is required"))
	}
	base := append([]expr.Option{expr.Env(Env{})}, rules.ExprOptions()...)
	for i, o := range spec.Outputs {
		at := fmt.Sprintf("mapping.outputs[%d] (%s)", i, o.Name)
		if !namePattern.MatchString(o.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q: use lower-case letters, digits, '-' and '_'", at, o.Name))
		}
		if o.Schema == "" {
			errs = append(errs, fmt.Errorf("%s: schema is required", at))
		}
		co := compiledOutput{spec: o}
		compile := func(field, source string, opts ...expr.Option) *vm.Program {
			p, err := expr.Compile(source, append(base[:len(base):len(base)], opts...)...)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", at, field, err))
			}
			return p
		}
		if o.When != "" {
			co.when = compile("when", o.When, expr.AsBool())
		}
		if len(o.RoutingKey) == 0 {
			errs = append(errs, fmt.Errorf("%s: routing_key: at least one word is required", at))
		}
		for j, k := range o.RoutingKey {
			switch {
			case k.Name == "" || k.Summary == "":
				errs = append(errs, fmt.Errorf("%s: routing_key[%d]: name and summary are required", at, j))
			case (k.Constant == "") == (k.Value == ""):
				errs = append(errs, fmt.Errorf("%s: routing_key[%d] (%s): give constant or value", at, j, k.Name))
			}
			var p *vm.Program
			if k.Value != "" {
				p = compile(fmt.Sprintf("routing_key[%d].value", j), k.Value)
			}
			co.key = append(co.key, p)
		}
		for _, field := range sortedKeys(o.Payload) {
			co.fields = append(co.fields, field)
			co.payload = append(co.payload, compile("payload."+field, o.Payload[field]))
		}
		c.outputs = append(c.outputs, co)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}
