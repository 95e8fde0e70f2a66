package runner

import (
	"slices"
	"strconv"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// origin is where a delivery first came from, and its waits so far.
type origin struct {
	// exchange and routingKey are where it was first published upstream.
	exchange, routingKey string
	// returning is true when it came back from the pipeline's wait
	// exchange; attempt counts its waits so far (0 on the first pass).
	returning bool
	attempt   int
	firstSeen time.Time
	// due is when a returning message's wait queue should have handed it
	// back (zero when its copy did not say).
	due time.Time
	// upstream are the headers it brought from upstream: the delivery's,
	// when within broker.BoundUpstream's bounds, or, for a returning
	// message, those its waiting copy carried. headersCut says why a
	// delivery's headers were left out.
	upstream   amqp.Table
	headersCut string
}

// maxAttempt bounds the attempt count read back from a waiting copy.
const maxAttempt = 1 << 20

// originOf reads where d came from. Only a delivery from one of own, the
// pipeline's exchanges through which its waiting and replayed messages
// return, which only the client may write to (and whose messages carry
// upstream headers of the same names renamed), is taken for a returning
// message and has its wait headers believed. For any other delivery
// every header is upstream data, whatever its name.
func originOf(d *broker.Delivery, now time.Time, own ...string) origin {
	o := origin{exchange: d.Exchange, routingKey: d.RoutingKey, firstSeen: now}
	if d.Exchange == "" || !slices.Contains(own, d.Exchange) {
		o.upstream, o.headersCut = broker.BoundUpstream(d.Headers)
		return o
	}
	o.returning = true
	o.exchange = headerString(d.Headers, pulse.HeaderSourceExchange)
	o.routingKey = headerString(d.Headers, pulse.HeaderSourceRoutingKey)
	if n, err := strconv.Atoi(headerString(d.Headers, pulse.HeaderAttempt)); err == nil && n > 0 {
		o.attempt = min(n, maxAttempt)
	}
	if t, err := time.Parse(time.RFC3339Nano, headerString(d.Headers, pulse.HeaderFirstSeen)); err == nil && !t.After(now) {
		o.firstSeen = t
	}
	o.due = dueOf(d.Headers)
	o.upstream = carriedOnly(d.Headers)
	o.headersCut = headerString(d.Headers, pulse.HeaderCutHeaders)
	return o
}

// cutHeaders says which upstream headers a copy of the message from src
// does not carry, having carried what CarryHeaders kept: all of them when
// the delivery's passed broker.BoundUpstream's bounds.
func cutHeaders(src origin, carried broker.Carried) string {
	if src.headersCut != "" {
		return src.headersCut
	}
	return carried.Cut
}

// originOf reads where d came from, believing the wait headers of a
// delivery only from the pipeline's own exchanges: the hold exchange
// (returning waiters, replayed messages) and the wait exchange (waiters of
// wait queues declared by earlier versions). Even then, the exchange a
// returning message names must be one the pipeline binds for its routing
// key (see config.PipelineConfig.BoundOrigin): a replayed message's
// origin may come from an x-death entry that upstream forged.
func (p *pipelineRun) originOf(d *broker.Delivery, now time.Time) origin {
	o := originOf(d, now, p.topology.Wait.HoldExchange, p.topology.Wait.Exchange)
	if o.returning {
		o.exchange, _ = p.cfg.BoundOrigin(o.exchange, o.routingKey)
	}
	return o
}

// carriedOnly drops from a returning message's headers the translator's
// own and the broker's record of the wait (x-death and its kin), leaving
// the upstream headers the waiting copy carried.
func carriedOnly(h amqp.Table) amqp.Table {
	kept := make(amqp.Table, len(h))
	for k, v := range h {
		if !pulse.Reserved(k) {
			kept[k] = v
		}
	}
	return kept
}

// dueOf is the time a waiting copy's headers say it is due back, or zero.
func dueOf(h amqp.Table) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, headerString(h, pulse.HeaderDue))
	return t
}

func headerString(h amqp.Table, key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
