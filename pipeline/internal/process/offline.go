package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// FileOutcome is what became of one raw message file offline: the outputs
// as they would be published (their bodies encoded, each with the
// artifacts the readiness gate would wait for), the drops, or the
// refusal. Nothing is published and nothing is checked over the network.
type FileOutcome struct {
	// Exchange and RoutingKey are where the file says the message was
	// published (its _meta).
	Exchange, RoutingKey string
	Published            []Routed
	// Bodies are the encoded bodies of Published, in order.
	Bodies  [][]byte
	Dropped []Drop
	// Refusal is set when the message would be parked.
	Refusal *translator.Refusal
}

// TranslateRaw runs a raw pulse message as a file holds it (the body, with
// _meta.exchange and _meta.routing_key saying where it was published)
// through the pipeline's pure steps, as the runner would: decode,
// translate, rules, validate, encode. received stands for the time of
// delivery.
func (p *Processor) TranslateRaw(body []byte, received time.Time) FileOutcome {
	var meta struct {
		Meta struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"_meta"`
	}
	_ = json.Unmarshal(body, &meta) // Decode refuses a body that is not JSON.
	return p.TranslateBody(meta.Meta.Exchange, meta.Meta.RoutingKey, body, received)
}

// TranslateBody runs a raw body published to exchange with routingKey
// through the pipeline's pure steps, as TranslateRaw does.
func (p *Processor) TranslateBody(exchange, routingKey string, body []byte, received time.Time) FileOutcome {
	out := FileOutcome{Exchange: exchange, RoutingKey: routingKey}
	_, outcome, err := p.ProcessBody(out.Exchange, out.RoutingKey, nil, body, received)
	if err == nil && len(outcome.Published) > 0 {
		out.Bodies, err = p.Encode(outcome.Published, received)
	}
	if err != nil {
		var refusal *translator.Refusal
		if !errors.As(err, &refusal) {
			refusal = &translator.Refusal{Class: pulse.ClassInternal, Reason: err.Error()}
		}
		out.Refusal = refusal
		return out
	}
	out.Published, out.Dropped = outcome.Published, outcome.Dropped
	return out
}

// PipelineProcessor builds the processor of the named pipeline of cfg
// (the first when name is empty) with the plugins of reg and what they
// ship: what "translate", "check" and the golden tests of a plugin run.
func PipelineProcessor(cfg *config.Config, name string, reg *translator.Registry) (*Processor, error) {
	shipped, err := Ship(reg)
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.Pipelines {
		if name == "" || p.Name == name {
			return NewProcessor(p, reg, shipped)
		}
	}
	return nil, fmt.Errorf("%s has no pipeline %q", cfg.Source(), name)
}
