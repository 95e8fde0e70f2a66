package runner

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
)

// flow is one pipeline's path of a message. The router calls handle in a
// goroutine of its own for each delivery, as many at once as the
// subscriber has in flight, so no message waits for another; it acks the
// input when handle returns nil. A refusal is parked (parkRefused), and
// the input acked after it.
type flow struct {
	p        *pipelineRun
	pub      *broker.Publisher
	log      *slog.Logger
	throttle *throttle
	// metrics may be nil.
	metrics *Metrics
	// publishTimeout bounds one publish attempt; attempts bounds them.
	publishTimeout time.Duration
	attempts       int
	// redeclare declares the topology again, when a publish found a part
	// of it missing.
	redeclare func(context.Context) error
}

// errNoDelivery is a message that did not come from the broker
// subscriber, which is a bug.
var errNoDelivery = errors.New("the message carries no delivery; only the broker subscriber feeds a flow")

// handle takes one delivery down the pipeline:
//
//	decode, translate, rules, validate   pure: the outputs, drops, or a refusal
//	readiness gate                       decides: publish now, or the message
//	                                     waits in a wait queue (and is done
//	                                     here), or is refused
//	encode                               the bodies, within the message's limits
//	publish                              confirmed; then the router acks the input.
//	                                     Refused (nack), or not confirmed in
//	                                     time, by a queue bound to the output
//	                                     exchange: the message waits, and is
//	                                     published again when it returns
func (f *flow) handle(msg *message.Message) error {
	ctx := msg.Context()
	d, ok := broker.DeliveryFrom(ctx)
	if !ok {
		return errNoDelivery
	}
	if due, ok := f.p.canaryDue(d); ok {
		// A canary back from the wait queues: noted, and acked.
		f.returned(time.Now(), due)
		return nil
	}
	f.p.stats.Received.Add(1)
	f.p.stats.InFlight.Add(1)
	defer f.p.stats.InFlight.Add(-1)
	if f.metrics != nil {
		f.metrics.Consumed.WithLabelValues(f.p.cfg.Name).Inc()
	}
	if limit := f.p.proc.MaxInputBytes(); len(d.Body) > limit {
		// Nothing more is done with it: its parked copy is cut.
		return process.TooLarge(len(d.Body), limit)
	}
	now := time.Now()
	src := f.p.originOf(d, now)
	if src.returning {
		f.returned(now, src.due)
	}

	if err := process.CheckContentType(d.ContentType); err != nil {
		return err
	}
	_, outcome, err := f.p.proc.ProcessBody(src.exchange, src.routingKey, src.upstream, d.Body, now)
	if err != nil {
		return err
	}
	f.dropped(src, outcome.Dropped)
	if len(outcome.Published) == 0 {
		return nil
	}

	v := f.p.gate.admit(ctx, src, outcome.Published, now)
	if done, err := f.act(ctx, d, src, v); done {
		return err
	}
	if len(v.unconfirmed) > 0 {
		// Past the deadline with on_deadline: publish. The field the
		// gate's verdict adds is validated with the rest of the payload.
		markUnconfirmed(outcome.Published, v.unconfirmed)
		if err := f.p.proc.Validate(outcome.Published); err != nil {
			return err
		}
	}

	bodies, err := f.p.proc.Encode(outcome.Published, now)
	if err != nil {
		return err
	}

	outs := outgoing(outcome.Published, bodies)
	err = f.publish(ctx, toOutput, outs...)
	if err == nil {
		f.p.recent.addOutputs(outs, src.routingKey)
	}
	if f.waitsWhenRefused(toOutput, err) {
		_, err = f.act(ctx, d, src, f.p.gate.refused(src, now, err))
	}
	return err
}

// outgoing makes the publishings of a message's outputs.
func outgoing(routed []process.Routed, bodies [][]byte) []broker.Outgoing {
	outs := make([]broker.Outgoing, len(routed))
	for i, r := range routed {
		outs[i] = broker.Outgoing{
			Exchange:    r.Output.Exchange,
			RoutingKey:  r.RoutingKey,
			CC:          r.CC,
			ContentType: "application/json",
			MessageID:   r.ID,
			Body:        bodies[i],
		}
	}
	return outs
}

// dropped counts and logs (at debug) what the translator or the rules
// dropped on purpose.
func (f *flow) dropped(src origin, drops []process.Drop) {
	for _, d := range drops {
		f.p.stats.Dropped.Add(1)
		if f.metrics != nil {
			f.metrics.Dropped.WithLabelValues(f.p.cfg.Name, d.Class).Inc()
		}
		f.log.Debug("dropped", "routing_key", src.routingKey, "reason", d.Reason, "rule", d.Rule)
	}
}
