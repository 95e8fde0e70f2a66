package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/pulsetranslator/pulsetranslator/pipeline/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// Headers of a message in a wait queue. RabbitMQ brings it back into the
// input queue from the wait exchange, so these say where it first came from
// and how long it has waited. They are trusted only on messages that arrive
// from the pipeline's own wait exchange, to which only the client may write.
const (
	// HeaderSourceExchange is the upstream exchange it was published to.
	HeaderSourceExchange = "x-pulsetranslator-source-exchange"
	// HeaderSourceRoutingKey is its upstream routing key.
	HeaderSourceRoutingKey = "x-pulsetranslator-source-routing-key"
	// HeaderAttempt counts its waits so far: 1 in the first wait queue.
	HeaderAttempt = "x-pulsetranslator-attempt"
	// HeaderFirstSeen is when the pipeline first saw it (RFC 3339, UTC).
	HeaderFirstSeen = "x-pulsetranslator-first-seen"
	// HeaderWaitingFor lists the artifacts it waits for and what each
	// answered at the last check.
	HeaderWaitingFor = "x-pulsetranslator-waiting-for"
)

// UnconfirmedField is the payload field that a message published past its
// deadline (on_deadline: publish) carries: the URLs of its artifacts that
// never answered ready. Schemas of such pipelines must allow it.
const UnconfirmedField = "artifacts_unconfirmed"

// maxWaitingFor bounds HeaderWaitingFor and the reason of an expired
// message, so that a message with many artifacts keeps small headers.
const maxWaitingFor = 2048

// waitState is what a delivery says about its earlier waits.
type waitState struct {
	// attempt counts the waits so far; 0 on the first pass.
	attempt   int
	firstSeen time.Time
}

// restoreSource reads the wait state of msg. A message that came back from
// the wait exchange gets its upstream exchange and routing key back in its
// metadata, so that it is translated, and parked if need be, as the
// original was.
func restoreSource(msg *message.Message, waitExchange string, now time.Time) waitState {
	state := waitState{firstSeen: now}
	if msg.Metadata.Get(broker.MetaExchange) != waitExchange {
		return state
	}
	msg.Metadata.Set(broker.MetaExchange, msg.Metadata.Get(HeaderSourceExchange))
	msg.Metadata.Set(broker.MetaRoutingKey, msg.Metadata.Get(HeaderSourceRoutingKey))
	state.attempt, _ = strconv.Atoi(msg.Metadata.Get(HeaderAttempt))
	if t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(HeaderFirstSeen)); err == nil && !t.After(now) {
		state.firstSeen = t
	}
	return state
}

// readinessGate holds a pipeline's messages back until their artifacts
// exist. It never sleeps or keeps a message: a message that must wait is
// published to a wait queue, and RabbitMQ brings it back when the tier's
// TTL expires.
type readinessGate struct {
	pipeline string
	cfg      WaitConfig
	exchange string
	checker  *gate.Checker
	stats    *Stats
	logger   watermill.LoggerAdapter
	// metrics may be nil.
	metrics *Metrics
}

func newReadinessGate(client string, p PipelineConfig, stats *Stats, logger watermill.LoggerAdapter) *readinessGate {
	return &readinessGate{
		pipeline: p.Name,
		cfg:      p.Wait,
		exchange: WaitExchange(client, p.Name),
		checker: gate.New(gate.Config{
			Timeout:     p.Wait.Check.Timeout,
			Concurrency: p.Wait.Check.Concurrency,
			PerHost:     p.Wait.Check.PerHost,
			CacheTTL:    p.Wait.Check.Cache,
		}),
		stats:  stats,
		logger: logger,
	}
}

// topology is the gate's part of the pipeline's topology.
func (g *readinessGate) topology(client string) *broker.WaitTopology {
	w := &broker.WaitTopology{Exchange: g.exchange, RetryKey: RetryKey, MaxLength: g.cfg.MaxLength}
	for _, tier := range g.cfg.Tiers {
		w.Queues = append(w.Queues, broker.WaitQueue{Name: WaitQueue(client, g.pipeline, tier), Key: TierName(tier), TTL: tier})
	}
	return w
}

// admit checks the artifacts of a message's outputs. All ready: it returns
// nothing, and the outputs are published. Some missing before the
// deadline: it returns the message to publish to a wait queue instead.
// Some missing past the deadline: a refusal of class artifacts_missing, or,
// with on_deadline publish, the URLs to mark as unconfirmed.
func (g *readinessGate) admit(ctx context.Context, msg *message.Message, in translator.Message, urls []string, state waitState, now time.Time) (wait *message.Message, unconfirmed []string, err error) {
	var missing []gate.Result
	for _, r := range g.checker.CheckAll(ctx, urls) {
		fields := watermill.LogFields{"pipeline": g.pipeline, "url": r.URL, "outcome": r.Outcome.String(), "detail": r.Detail}
		if r.Outcome == gate.Failed {
			g.logger.Info("artifact check failed", fields)
		} else {
			g.logger.Debug("artifact check", fields)
		}
		if r.Outcome != gate.Ready {
			missing = append(missing, r)
		}
		if g.metrics != nil {
			g.metrics.GateChecks.WithLabelValues(g.pipeline, r.Outcome.String()).Inc()
		}
	}
	if len(missing) == 0 {
		return nil, nil, nil
	}
	elapsed := now.Sub(state.firstSeen)
	if elapsed >= g.cfg.Deadline {
		g.stats.Expired.Add(1)
		if g.cfg.OnDeadline == OnDeadlinePublish {
			for _, r := range missing {
				unconfirmed = append(unconfirmed, r.URL)
			}
			return nil, unconfirmed, nil
		}
		msg.Metadata.Set(HeaderWaitingFor, describeMissing(missing))
		return nil, nil, translator.Refuse(ClassArtifactsMissing,
			"artifacts still missing %s after the message was first seen (deadline %s, %d checks): %s",
			elapsed.Round(time.Millisecond), g.cfg.Deadline, state.attempt+1, describeMissing(missing))
	}
	tier := g.cfg.Tiers[g.cfg.TierFor(state.attempt, g.cfg.Deadline-elapsed)]
	g.stats.Waited.Add(1)
	if g.metrics != nil {
		g.metrics.Waiting.WithLabelValues(g.pipeline, TierName(tier)).Inc()
	}
	g.logger.Debug("waiting for artifacts", watermill.LogFields{
		"pipeline": g.pipeline, "routing_key": in.RoutingKey, "tier": TierName(tier), "attempt": state.attempt + 1})
	return g.waitMessage(msg, in, state, tier, missing), nil, nil
}

// waitMessage is the raw message as it goes to a wait queue: the body
// unchanged, and headers that say where it came from and since when.
func (g *readinessGate) waitMessage(msg *message.Message, in translator.Message, state waitState, tier time.Duration, missing []gate.Result) *message.Message {
	id := msg.UUID
	if id == "" {
		id = watermill.NewUUID()
	}
	out := message.NewMessage(id, msg.Payload)
	md := out.Metadata
	md.Set(broker.MetaPublishExchange, g.exchange)
	md.Set(broker.MetaPublishRoutingKey, TierName(tier))
	if ct := msg.Metadata.Get(broker.MetaContentType); ct != "" {
		md.Set(broker.MetaPublishContentType, ct)
	}
	md.Set(HeaderSourceExchange, in.Exchange)
	md.Set(HeaderSourceRoutingKey, in.RoutingKey)
	md.Set(HeaderAttempt, strconv.Itoa(state.attempt+1))
	md.Set(HeaderFirstSeen, state.firstSeen.UTC().Format(time.RFC3339Nano))
	md.Set(HeaderWaitingFor, describeMissing(missing))
	return out
}

// describeMissing says which artifacts are missing and what they answered,
// within maxWaitingFor bytes.
func describeMissing(missing []gate.Result) string {
	var b strings.Builder
	for i, r := range missing {
		part := fmt.Sprintf("%s (%s: %s)", r.URL, r.Outcome, r.Detail)
		if i > 0 {
			part = "; " + part
		}
		if b.Len()+len(part) > maxWaitingFor {
			fmt.Fprintf(&b, "; and %d more", len(missing)-i)
			break
		}
		b.WriteString(part)
	}
	return b.String()
}

// waitURLs gathers the distinct artifact URLs of a message's outputs.
func waitURLs(routed []Routed) []string {
	var urls []string
	for _, r := range routed {
		for _, u := range r.WaitFor {
			if !slices.Contains(urls, u) {
				urls = append(urls, u)
			}
		}
	}
	return urls
}

// markUnconfirmed adds UnconfirmedField to each output that waited for one
// of the unconfirmed URLs.
func markUnconfirmed(routed []Routed, unconfirmed []string) {
	for _, r := range routed {
		var mine []any
		for _, u := range r.WaitFor {
			if slices.Contains(unconfirmed, u) {
				mine = append(mine, u)
			}
		}
		if len(mine) > 0 {
			r.Payload[UnconfirmedField] = mine
		}
	}
}
