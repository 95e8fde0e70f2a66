// Package process is the pure path of one message, with no I/O:
//
//	decode.go    raw delivery body  -> translator.Message, or a refusal
//	process.go   translator.Message -> translate, rules, validate -> Routed outputs
//	envelope.go  Routed output      -> the published body
//
// and what feeds it: the schemas and rule files the plugins ship
// (plugins.go), and offline runs over message files (offline.go). The
// runner (package runner) takes each delivery down this path, with the
// readiness gate between validation and encoding.
package process

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/cespare/xxhash/v2"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// MaxCC caps the CC routing keys of one output, so that the header always
// fits a frame (taskcluster caps routes at 64 for the same reason).
const MaxCC = 64

// maxRoutingKey is AMQP's limit on a routing key (a short string).
const maxRoutingKey = 255

// Processor runs the pure steps of one pipeline on a decoded message:
// translate, rules, schema validation, output naming. It does no I/O and is
// safe for concurrent use.
type Processor struct {
	name       string
	translator translator.Translator
	rules      *rules.Set
	schemas    *schemas.Set
	outputs    []config.OutputConfig
	limits     config.LimitsConfig
	// ccRoom is how many CC routes the rules may add to an output: its CC
	// list is made with room for them.
	ccRoom int
}

// Routed is one output ready to publish.
type Routed struct {
	// Output is the exchange it goes to.
	Output *config.OutputConfig
	// RoutingKey and CC route it.
	RoutingKey string
	CC         []string
	// Payload is the validated normalized message.
	Payload map[string]any
	// ID is the deterministic message id: the same input always gives the
	// same ids, so consumers can de-duplicate redeliveries.
	ID string
	// WaitFor are the URLs of artifacts that must exist before it is
	// published (from wait_for rules); all are http or https.
	WaitFor []string
	// Schema names the schema Payload was validated against.
	Schema string
}

// Drop is one output (or a whole message) that was deliberately not
// published.
type Drop struct {
	// Reason says why; Rule names the rule that dropped it ("" when the
	// translator did); Class is the translator's class of drop, or the
	// rule's name.
	Reason string
	Rule   string
	Class  string
}

// Outcome is what became of one message that was not refused.
type Outcome struct {
	Published []Routed
	Dropped   []Drop
}

// NewProcessor builds the processor of one pipeline: it loads and compiles
// the rule files (builtin:NAME from the plugin that ships it), builds the
// translator from the registry and checks the pieces fit, among them that
// every schema the translator says it publishes (translator.Describer) is
// shipped. Any error stops start-up.
func NewProcessor(cfg config.PipelineConfig, reg *translator.Registry, shipped *Shipped) (*Processor, error) {
	spec, ok := reg.Lookup(cfg.Translator)
	if !ok {
		return nil, fmt.Errorf("%s: pipeline %q: translator %q is not in this binary, which has %s; a binary carries the plugins it imports (this repository's: translators/all; a plugin's: its own)",
			cfg.TranslatorAt(), cfg.Name, cfg.Translator, strings.Join(reg.Names(), ", "))
	}
	var files []*rules.File
	for _, path := range cfg.Rules {
		f, err := shipped.LoadRules(path)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", cfg.Name, err)
		}
		files = append(files, f)
	}
	set, err := rules.Compile(files...)
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", cfg.Name, err)
	}
	limits := cfg.Limits
	if limits.MaxOutputs <= 0 {
		limits.MaxOutputs = config.DefaultMaxOutputs
	}
	if limits.MaxOutputBytes <= 0 {
		limits.MaxOutputBytes = config.DefaultMaxOutputBytes
	}
	if limits.MaxInputBytes <= 0 {
		limits.MaxInputBytes = config.DefaultMaxInputBytes
	}
	tr, err := spec.New(translator.Params{Pipeline: cfg.Name, Tables: set.Tables(), MaxOutputs: limits.MaxOutputs})
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", cfg.Name, err)
	}
	if d, ok := tr.(translator.Describer); ok {
		var missing []error
		for _, doc := range d.Describe() {
			if doc.Schema != "" && !shipped.Schemas.Has(doc.Schema) {
				missing = append(missing, fmt.Errorf("pipeline %q: the %s plugin publishes %q messages with the schema %s, which no plugin ships (shipped: %s)",
					cfg.Name, spec.Name, doc.Name, doc.Schema, strings.Join(shipped.Schemas.Names(), ", ")))
			}
		}
		if err := errors.Join(missing...); err != nil {
			return nil, err
		}
	}
	return &Processor{name: cfg.Name, translator: tr, rules: set, schemas: shipped.Schemas, outputs: cfg.Outputs, limits: limits, ccRoom: len(set.CCRoutes())}, nil
}

// Waits reports whether the pipeline's rules make outputs wait for
// artifacts, and so whether it needs the readiness gate.
func (p *Processor) Waits() bool { return p.rules.Waits() }

// Translator returns the pipeline's translator.
func (p *Processor) Translator() translator.Translator { return p.translator }

// Rules returns the pipeline's compiled rules.
func (p *Processor) Rules() *rules.Set { return p.rules }

// MaxInputBytes is the largest input body the pipeline reads
// (limits.max_input_bytes).
func (p *Processor) MaxInputBytes() int { return p.limits.MaxInputBytes }

// ProcessBody decodes a raw body (see Decode) and processes the message:
// what the runner does with each delivery. It returns the decoded message
// too, for what comes after (the readiness gate).
func (p *Processor) ProcessBody(exchange, routingKey string, headers map[string]any, body []byte, received time.Time) (translator.Message, Outcome, error) {
	msg, err := decode(exchange, routingKey, headers, body, received, p.limits.MaxInputBytes)
	if err != nil {
		return msg, Outcome{}, err
	}
	outcome, err := p.Process(msg)
	return msg, outcome, err
}

// Process translates msg and runs the rules and schema checks on every
// output. A refused message returns a *translator.Refusal (and never a
// partial outcome): a translator refusal as it is, a failing rule as class
// "rule", a schema violation as class "schema", anything else as
// "internal".
func (p *Processor) Process(msg translator.Message) (Outcome, error) {
	outs, err := p.translator.Translate(msg)
	var dropped *translator.Dropped
	switch {
	case errors.As(err, &dropped):
		class := dropped.Class
		if class == "" {
			class = "unclassified"
		}
		return Outcome{Dropped: []Drop{{Reason: dropped.Reason, Class: class}}}, nil
	case err != nil:
		return Outcome{}, asRefusal(err)
	case len(outs) == 0:
		return Outcome{}, translator.Refuse(pulse.ClassEmptyResult, "the %s translator returned no outputs and no reason; this is a bug in the translator", p.name)
	case len(outs) > p.limits.MaxOutputs:
		return Outcome{}, translator.Refuse(pulse.ClassTooManyOutputs, "the message gives %d outputs; the limit is %d (limits.max_outputs)", len(outs), p.limits.MaxOutputs)
	}
	digest := inputDigest(msg)
	result := Outcome{Published: make([]Routed, 0, len(outs))}
	var checkedURLs []string // the outputs of a repack share their URLs
	for i := range outs {
		out := &outs[i]
		var cc []string
		if room := len(out.CC) + p.ccRoom; room > 0 {
			cc = append(make([]string, 0, room), out.CC...)
		}
		subj := rules.Subject{
			Payload:    out.Payload,
			RoutingKey: out.RoutingKey,
			CC:         cc,
			Input:      rules.Input{Exchange: msg.Exchange, RoutingKey: msg.RoutingKey},
		}
		rule, err := p.rules.Apply(&subj)
		if err != nil {
			return Outcome{}, translator.Refuse(pulse.ClassRule, "%w", err)
		}
		if rule != "" {
			result.Dropped = append(result.Dropped, Drop{Reason: "dropped by rule " + rule, Rule: rule, Class: "rule:" + rule})
			continue
		}
		routed, err := p.route(out, subj, digest, i, &checkedURLs)
		if err != nil {
			return Outcome{}, err
		}
		result.Published = append(result.Published, routed)
	}
	return result, nil
}

// route checks one output and names its exchange and id. checkedURLs are
// the artifact URLs found valid for earlier outputs of the message.
func (p *Processor) route(out *translator.Output, subj rules.Subject, digest [32]byte, index int, checkedURLs *[]string) (Routed, error) {
	target := p.Output(out.To)
	if target == nil {
		return Routed{}, translator.Refuse(pulse.ClassUnknownTo, "the translator sent an output to %q, which pipeline %q does not have", out.To, p.name)
	}
	if err := checkRoutingKey(out.RoutingKey); err != nil {
		return Routed{}, err
	}
	cc := subj.CC
	if len(cc) > MaxCC {
		return Routed{}, translator.Refuse(pulse.ClassBadRoute, "%s has %d CC routes; the limit is %d", out.RoutingKey, len(cc), MaxCC)
	}
	for _, route := range cc {
		if err := checkRoutingKey(route); err != nil {
			return Routed{}, err
		}
	}
	if err := p.schemas.Validate(out.Schema, subj.Payload); err != nil {
		return Routed{}, translator.Refuse(pulse.ClassSchema, "output %s breaks its schema: %w", out.RoutingKey, err)
	}
	for _, u := range subj.WaitFor {
		if slices.Contains(*checkedURLs, u) {
			continue
		}
		if err := urlpolicy.ValidURL(u); err != nil {
			return Routed{}, translator.Refuse(pulse.ClassBadArtifactURL, "output %s waits for an artifact that cannot be checked: %v", out.RoutingKey, err)
		}
		*checkedURLs = append(*checkedURLs, u)
	}
	return Routed{
		Output:     target,
		RoutingKey: out.RoutingKey,
		CC:         cc,
		Payload:    subj.Payload,
		WaitFor:    subj.WaitFor,
		Schema:     out.Schema,
		ID:         outputID(digest, p.name, target.Exchange, out.RoutingKey, index),
	}, nil
}

// Validate validates the payloads of routed against their schemas again,
// after a step past the rules changed them (the readiness gate's
// artifacts_unconfirmed): a schema that does not allow the change
// refuses the message (class schema), and nothing unchecked goes out.
func (p *Processor) Validate(routed []Routed) error {
	for _, r := range routed {
		if err := p.schemas.Validate(r.Schema, r.Payload); err != nil {
			return translator.Refuse(pulse.ClassSchema, "output %s breaks its schema once the readiness gate marked it: %w", r.RoutingKey, err)
		}
	}
	return nil
}

// Encode encodes the bodies of a message's outputs, as they are
// published at sent: the step after the readiness gate (which may mark
// payloads as unconfirmed). It refuses the message when the bodies add up
// to more than limits.max_output_bytes, stopping at the output that
// crosses it, or when an output holds a number consumers cannot read
// exactly.
func (p *Processor) Encode(routed []Routed, sent time.Time) ([][]byte, error) {
	bodies := make([][]byte, len(routed))
	total := 0
	for i, r := range routed {
		body, err := Body(r, sent)
		var unsafe *UnsafeNumberError
		switch {
		case errors.As(err, &unsafe):
			return nil, translator.Refuse(pulse.ClassUnsafeNumber, "output %s: %v", r.RoutingKey, err)
		case err != nil:
			return nil, translator.Refuse(pulse.ClassInternal, "encode output %s: %v", r.RoutingKey, err)
		}
		if total += len(body); total > p.limits.MaxOutputBytes {
			return nil, translator.Refuse(pulse.ClassOutputsTooLarge, "the bodies of the message's outputs reach %d bytes at output %d of %d; the limit is %d (limits.max_output_bytes)",
				total, i+1, len(routed), p.limits.MaxOutputBytes)
		}
		bodies[i] = body
	}
	return bodies, nil
}

// Output returns the pipeline output a translator output's To names (the
// first when it names none), or nil.
func (p *Processor) Output(name string) *config.OutputConfig {
	if name == "" {
		return &p.outputs[0]
	}
	for i := range p.outputs {
		if p.outputs[i].Name == name {
			return &p.outputs[i]
		}
	}
	return nil
}

func checkRoutingKey(key string) error {
	if key == "" || len(key) > maxRoutingKey {
		return translator.Refuse(pulse.ClassBadRoute, "routing key %.80q has %d bytes; it needs 1 to %d", key, len(key), maxRoutingKey)
	}
	return nil
}

// asRefusal turns any error into a *translator.Refusal.
func asRefusal(err error) error {
	var r *translator.Refusal
	if errors.As(err, &r) {
		return r
	}
	return translator.Refuse(pulse.ClassInternal, "%w", err)
}

// inputDigest identifies a raw message by its exchange, routing key and
// body: SHA-256 of the exchange, the routing key, the body's length and its
// xxHash64. Hashing the body with xxHash (over 10 GB/s) rather than SHA-256
// (2 GB/s: 8 us for a 17 KB Buildbot message, half its translation) keeps
// the digest cheap; two different bodies with the same exchange and routing
// key share an id only if their 64-bit hashes and lengths collide.
func inputDigest(msg translator.Message) [32]byte {
	buf := make([]byte, 0, 512)
	buf = append(buf, msg.Exchange...)
	buf = append(buf, 0)
	buf = append(buf, msg.RoutingKey...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(msg.Body)))
	buf = binary.BigEndian.AppendUint64(buf, xxhash.Sum64(msg.Body))
	return sha256.Sum256(buf)
}

// outputID derives an output's message id, formatted as a UUID (version 8,
// custom), from the input digest and the output's place.
func outputID(digest [32]byte, pipeline, exchange, routingKey string, index int) string {
	buf := make([]byte, 0, 512)
	buf = append(buf, digest[:]...)
	for _, s := range [...]string{pipeline, exchange, routingKey} {
		buf = append(buf, s...)
		buf = append(buf, 0)
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(index))
	sum := sha256.Sum256(buf)
	sum[6] = sum[6]&0x0f | 0x80 // version 8
	sum[8] = sum[8]&0x3f | 0x80 // RFC 9562 variant
	var id [36]byte
	hex.Encode(id[0:8], sum[0:4])
	id[8] = '-'
	hex.Encode(id[9:13], sum[4:6])
	id[13] = '-'
	hex.Encode(id[14:18], sum[6:8])
	id[18] = '-'
	hex.Encode(id[19:23], sum[8:10])
	id[23] = '-'
	hex.Encode(id[24:36], sum[10:16])
	return string(id[:])
}
