package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// maxWaitingFor bounds HeaderWaitingFor and the reason of an expired
// message, so that a message with many artifacts keeps small headers.
const maxWaitingFor = 2048

// readinessGate holds a pipeline's messages back until their artifacts
// exist, and until the queues bound to the output exchange take their
// outputs. It never sleeps or keeps a message: the checks of one message
// get a short budget, and a message whose artifacts are not there (or
// could not be asked about within the budget), or whose outputs a queue
// refused, is published to a wait queue, from which RabbitMQ brings it
// back when the tier's TTL expires. Every pipeline has one; only a
// pipeline whose rules wait for artifacts checks them.
type readinessGate struct {
	pipeline string
	cfg      config.WaitConfig
	// exchange is the wait queues' way back to the input (their
	// dead-letter exchange); holdExchange, private to the client, the way
	// into them.
	exchange, holdExchange string
	// checker is nil when the pipeline's rules wait for no artifact.
	checker *gate.Checker
	// depth counts the messages of a queue; set by the runner.
	depth func(ctx context.Context, queue string) (int, error)
	// f publishes, counts and logs for the gate.
	f *flow
}

// newReadinessGate makes the gate of pipeline p; checks says whether its
// rules wait for artifacts, which the gate then checks.
func newReadinessGate(client string, p config.PipelineConfig, checks bool) (*readinessGate, error) {
	g := &readinessGate{
		pipeline:     p.Name,
		cfg:          p.Wait,
		exchange:     pulse.WaitExchange(client, p.Name),
		holdExchange: pulse.HoldExchange(client, p.Name),
	}
	if checks {
		var err error
		g.checker, err = gate.New(gate.Config{
			Timeout:              p.Wait.Check.Timeout,
			Concurrency:          p.Wait.Check.Concurrency,
			PerHost:              p.Wait.Check.PerHost,
			CacheTTL:             p.Wait.Check.Cache,
			Policy:               p.Wait.Check.Policy(),
			ProxyFromEnvironment: p.Wait.Check.ProxyFromEnvironment,
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: wait.check.allow: %w", p.Name, err)
		}
	}
	return g, nil
}

// use makes the gate publish, count and log through f, and count a wait
// queue's messages with depth.
func (g *readinessGate) use(f *flow, depth func(ctx context.Context, queue string) (int, error)) {
	g.f, g.depth = f, depth
}

// countWithin bounds how long full waits for a wait queue's count.
const countWithin = 5 * time.Second

// full reports whether the wait queue of a tier (by its routing key)
// nacked because it holds its max_length or max_bytes: then the message
// is parked at once. A classic queue nacks for nothing else. A quorum
// queue also nacks while it has no leader: one below max_length is taken
// for that, and the publish is tried again; so it is when the queue
// cannot be counted. (A quorum wait queue at max_bytes but below
// max_length looks the same, and is tried again until publish_attempts.)
func (g *readinessGate) full(ctx context.Context, tier string) bool {
	if g.f.p.cfg.Queue.Type != config.QueueQuorum {
		return true
	}
	for _, q := range g.f.p.topology.Wait.Queues {
		if q.Key != tier {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, countWithin)
		n, err := g.depth(ctx, q.Name)
		cancel()
		if err != nil {
			g.f.throttle.log(slog.LevelWarn, "count "+q.Name, "cannot count the wait queue after a nack; trying the publish again", "pipeline", g.pipeline, "queue", q.Name, "error", err.Error())
			return false
		}
		return n >= g.cfg.MaxLength
	}
	return true
}

// topology is the gate's part of the pipeline's topology.
func (g *readinessGate) topology(client string) *broker.WaitTopology {
	w := &broker.WaitTopology{Exchange: g.exchange, HoldExchange: g.holdExchange, RetryKey: pulse.RetryKey, MaxLength: g.cfg.MaxLength, MaxBytes: g.cfg.MaxBytes}
	for _, tier := range g.cfg.Tiers {
		w.Queues = append(w.Queues, broker.WaitQueue{Name: pulse.WaitQueue(client, g.pipeline, tier), Key: pulse.TierName(tier), TTL: tier})
	}
	return w
}

// admit checks the artifacts of a message's outputs, within the check
// budget. All ready: it returns false, and the outputs are published.
// Some missing before the deadline: the message is published to a wait
// queue and it returns true. Some missing past the deadline: a refusal of
// class artifacts_missing or, with on_deadline publish, false with the
// outputs marked unconfirmed.
func (g *readinessGate) admit(ctx context.Context, d *broker.Delivery, src origin, routed []process.Routed, now time.Time) (held bool, err error) {
	if g.checker == nil {
		return false, nil
	}
	urls := waitURLs(routed)
	if len(urls) == 0 {
		return false, nil
	}
	missing := g.check(ctx, urls)
	if len(missing) == 0 {
		return false, nil
	}
	for _, r := range missing {
		if r.Outcome == gate.Forbidden {
			return false, translator.Refuse(pulse.ClassBadArtifactURL, "the artifact check of %s may not go where it leads: %s", termtext.Truncate(r.RedactedURL(), 300), r.Detail)
		}
	}
	elapsed := now.Sub(src.firstSeen)
	if elapsed >= g.cfg.Deadline {
		g.f.p.stats.Expired.Add(1)
		if g.cfg.OnDeadline == config.OnDeadlinePublish {
			var unconfirmed []string
			for _, r := range missing {
				unconfirmed = append(unconfirmed, r.URL)
			}
			markUnconfirmed(routed, unconfirmed)
			return false, nil
		}
		return false, &missingArtifacts{
			Refusal: &translator.Refusal{Class: pulse.ClassArtifactsMissing, Reason: fmt.Sprintf(
				"artifacts still missing %s after the message was first seen (deadline %s, %d checks): %s",
				elapsed.Round(time.Millisecond), g.cfg.Deadline, src.attempt+1, describeMissing(missing))},
			waitingFor: describeMissing(missing),
		}
	}
	return true, g.hold(ctx, d, src, g.nextTier(src, elapsed), describeMissing(missing))
}

// Why a queue bound to the output exchange kept a message's outputs from
// being confirmed: what its waiting copy waits for, and what its reason
// says at the deadline.
const (
	refusedOutputs     = "the output exchange: a queue bound to it refused the outputs (nack)"
	refusedCause       = "a queue bound to the output exchange refused the outputs (nack)"
	refusedHint        = "a consumer's queue at its length limit with x-overflow reject-publish, or a quorum queue without a leader: rabbitmqctl list_queues name arguments messages"
	unconfirmedOutputs = "the output exchange: no confirm of the outputs within the publish timeout"
	unconfirmedCause   = "no confirm of the outputs came within the publish timeout"
	unconfirmedHint    = "a queue bound to the output exchange that does not answer (" + broker.UnresponsiveQueueHint + "), or an overloaded broker"
)

// refused holds a message whose outputs the broker nacked, or did not
// confirm within the publish timeout: a queue bound to the output
// exchange refused them (a consumer's queue at its length limit with
// x-overflow reject-publish, a quorum queue without a leader) or does not
// answer. The consumers whose queues took them have them; the message
// waits in a wait queue, not in hand, and its outputs are published
// again when it returns, so that one consumer's queue neither holds up
// the pipeline nor loses that consumer a message before the deadline.
// Past the deadline it is refused as unpublishable, to be replayed.
func (g *readinessGate) refused(ctx context.Context, d *broker.Delivery, src origin, now time.Time, err error) error {
	label, waitingFor, cause, hint := "nack", refusedOutputs, refusedCause, refusedHint
	if errors.Is(err, broker.ErrNoConfirm) {
		label, waitingFor, cause, hint = "no_confirm", unconfirmedOutputs, unconfirmedCause, unconfirmedHint
	}
	g.f.p.stats.Refused.Add(1)
	if g.f.metrics != nil {
		g.f.metrics.OutputsRefused.WithLabelValues(g.pipeline, label).Inc()
	}
	elapsed := now.Sub(src.firstSeen)
	if elapsed >= g.cfg.Deadline {
		return translator.Refuse(pulse.ClassUnpublishable, "%s, at pass %d, %s after the message was first seen (deadline %s); the consumers whose queues took them have them. Likely %s; then: pulsetranslator dead replay",
			cause, src.attempt+1, elapsed.Round(time.Millisecond), g.cfg.Deadline, hint)
	}
	tier := g.nextTier(src, elapsed)
	g.f.p.stats.Retried.Add(1)
	if g.f.metrics != nil {
		g.f.metrics.Retries.WithLabelValues(g.pipeline, string(toOutput)).Inc()
	}
	g.f.throttle.log(slog.LevelWarn, "refused outputs "+cause, cause+"; the consumers whose queues took them have them, and the message waits to publish them again",
		"pipeline", g.pipeline, "routing_key", termtext.Truncate(src.routingKey, 255), "tier", pulse.TierName(tier), "attempt", src.attempt+1, "likely", hint)
	return g.hold(ctx, d, src, tier, waitingFor)
}

// nextTier is the wait tier of a message's next wait, elapsed after it
// was first seen.
func (g *readinessGate) nextTier(src origin, elapsed time.Duration) time.Duration {
	return g.cfg.Tiers[g.cfg.TierFor(src.attempt, g.cfg.Deadline-elapsed)]
}

// check checks urls within the budget and returns the results that are
// not ready. A check that cannot get a slot or an answer within the
// budget is not ready: a slow or hanging host costs only its own messages
// and never holds the slots others need.
func (g *readinessGate) check(ctx context.Context, urls []string) []gate.Result {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Check.Budget)
	defer cancel()
	var missing []gate.Result
	for _, r := range g.checker.CheckAll(ctx, urls) {
		if r.Outcome == gate.Failed || r.Outcome == gate.Skipped {
			host := "?"
			if u, err := url.Parse(r.URL); err == nil {
				host = u.Host
			}
			g.f.throttle.log(slog.LevelInfo, "check "+host, "artifact check failed", "pipeline", g.pipeline, "host", host, "url", termtext.Truncate(r.RedactedURL(), 300), "detail", r.Detail)
		} else if g.f.log.Enabled(ctx, slog.LevelDebug) {
			// Checked first: the arguments of a disabled Debug are still
			// boxed, for every check.
			g.f.log.Debug("artifact check", "url", r.RedactedURL(), "outcome", r.Outcome.String(), "detail", r.Detail)
		}
		if r.Outcome != gate.Ready {
			missing = append(missing, r)
		}
		if g.f.metrics != nil {
			g.f.metrics.GateChecks.WithLabelValues(g.pipeline, r.Outcome.String()).Inc()
		}
	}
	return missing
}

// hold publishes the message to the wait queue of tier: the body and
// content type unchanged, the upstream headers that fit, and headers that
// say where it came from, since when, and what it waits for. A wait
// queue at its max_length
// refuses it (reject-publish): it is parked with class wait_queue_full,
// neither dropped nor tried again in a loop.
func (g *readinessGate) hold(ctx context.Context, d *broker.Delivery, src origin, tier time.Duration, waitingFor string) error {
	err := g.f.publish(ctx, toWait, broker.Outgoing{
		Exchange: g.holdExchange, RoutingKey: pulse.TierName(tier),
		ContentType: d.ContentType, MessageID: d.MessageID, Headers: waitHeaders(src, waitingFor), Body: d.Body,
	})
	switch {
	case err == nil:
		g.f.p.stats.Waited.Add(1)
		if g.f.metrics != nil {
			g.f.metrics.Waiting.WithLabelValues(g.pipeline, pulse.TierName(tier)).Inc()
		}
		g.f.log.Debug("waiting", "routing_key", src.routingKey, "tier", pulse.TierName(tier), "attempt", src.attempt+1, "for", waitingFor)
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
// (waitingFor).
func waitHeaders(src origin, waitingFor string) amqp.Table {
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
	return h
}

// describeMissing says which artifacts are missing and what they answered,
// within maxWaitingFor bytes.
func describeMissing(missing []gate.Result) string {
	var b strings.Builder
	for i, r := range missing {
		part := fmt.Sprintf("%s (%s: %s)", r.RedactedURL(), r.Outcome, r.Detail)
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
func waitURLs(routed []process.Routed) []string {
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
func markUnconfirmed(routed []process.Routed, unconfirmed []string) {
	for _, r := range routed {
		var mine []any
		for _, u := range r.WaitFor {
			if slices.Contains(unconfirmed, u) {
				mine = append(mine, u)
			}
		}
		if len(mine) > 0 {
			r.Payload[pulse.UnconfirmedField] = mine
		}
	}
}
