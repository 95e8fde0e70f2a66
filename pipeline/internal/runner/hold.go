package runner

import (
	"context"
	"errors"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// act carries out what the readiness gate decided for a message, when it
// is not to publish the outputs now: hold the message in a wait queue, or
// refuse it. done is false for publish: the flow goes on.
func (f *flow) act(ctx context.Context, d *broker.Delivery, src origin, v verdict) (done bool, err error) {
	switch v.kind {
	case hold:
		return true, f.hold(ctx, d, src, v.tier, v.waitingFor)
	case refuse:
		return true, v.refusal
	}
	return false, nil
}

// hold publishes the message to the wait queue of tier, through the
// pipeline's hold exchange: the body and content type unchanged, the
// upstream headers that fit, and headers that say where it came from,
// since when, and what it waits for. A wait queue at its max_length or
// max_bytes refuses it (reject-publish): it is parked with class
// wait_queue_full, neither dropped nor tried again in a loop.
func (f *flow) hold(ctx context.Context, d *broker.Delivery, src origin, tier time.Duration, waitingFor string) error {
	g := f.p.gate
	err := f.publish(ctx, toWait, broker.Outgoing{
		Exchange: g.holdExchange, RoutingKey: pulse.TierName(tier),
		ContentType: d.ContentType, MessageID: d.MessageID, Headers: waitHeaders(src, waitingFor, time.Now().Add(tier)), Body: d.Body,
	})
	switch {
	case err == nil:
		f.p.stats.Waited.Add(1)
		if f.metrics != nil {
			f.metrics.Waiting.WithLabelValues(f.p.cfg.Name, pulse.TierName(tier)).Inc()
		}
		f.log.Debug("waiting", "routing_key", src.routingKey, "tier", pulse.TierName(tier), "attempt", src.attempt+1, "for", waitingFor)
		return nil
	case errors.Is(err, broker.ErrNacked):
		return translator.Refuse(pulse.ClassWaitQueueFull, "the wait queue of tier %s refused the message: it holds its max_length of %d messages or its max_bytes of %d bytes (raise wait.max_length or wait.max_bytes, or find why so many messages wait: artifacts that do not appear, or a consumer's queue that refuses the outputs; their x-pulsetranslator-waiting-for says which)",
			pulse.TierName(tier), g.cfg.MaxLength, g.cfg.MaxBytes)
	}
	return err
}

// waitHeaders are the headers of a waiting copy: the upstream headers
// that fit (see broker.CarryHeaders), then the translator's own, which
// say where the message came from, since when, and what it waits for
// (waitingFor), and when it is due back.
func waitHeaders(src origin, waitingFor string, due time.Time) amqp.Table {
	carried := broker.CarryHeaders(src.upstream)
	h := make(amqp.Table, len(carried.Headers)+6)
	for k, v := range carried.Headers {
		h[k] = v
	}
	if cut := cutHeaders(src, carried); cut != "" {
		h[pulse.HeaderCutHeaders] = termtext.Truncate(cut, maxReason)
	}
	h[pulse.HeaderSourceExchange] = src.exchange
	h[pulse.HeaderSourceRoutingKey] = src.routingKey
	h[pulse.HeaderAttempt] = strconv.Itoa(src.attempt + 1)
	h[pulse.HeaderFirstSeen] = src.firstSeen.UTC().Format(time.RFC3339Nano)
	h[pulse.HeaderWaitingFor] = waitingFor
	h[pulse.HeaderDue] = due.UTC().Format(time.RFC3339Nano)
	return h
}
