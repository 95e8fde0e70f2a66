package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// maxWaitingFor bounds HeaderWaitingFor and the reason of an expired
// message, so that a message with many artifacts keeps small headers.
const maxWaitingFor = 2048

// readinessGate decides, for each message, whether its outputs go out
// now, or the message waits in a wait queue (for its artifacts to exist,
// or for a queue bound to the output exchange to take its outputs), or
// is refused; the flow acts on what it decides (flow.act, in hold.go).
// It never sleeps or keeps a message: the checks of one message get a
// short budget, and a message that must wait goes to a wait queue, from
// which RabbitMQ brings it back when the tier's TTL expires. Every
// pipeline has one; only a pipeline whose rules wait for artifacts
// checks them.
type readinessGate struct {
	client, pipeline string
	cfg              config.WaitConfig
	queueType        string
	// exchange is the wait queues' way back to the input (their
	// dead-letter exchange); holdExchange, private to the client, the way
	// into them.
	exchange, holdExchange string
	// checker is nil when the pipeline's rules wait for no artifact.
	checker *gate.Checker
	// depth counts the messages of a queue; set by use.
	depth func(ctx context.Context, queue string) (int, error)
	// stats, log, throttle and metrics (which may be nil) count and log
	// what the gate decides; set by use.
	stats    *Stats
	log      *slog.Logger
	throttle *throttle
	metrics  *Metrics
}

// newReadinessGate makes the gate of pipeline p; checks says whether its
// rules wait for artifacts, which the gate then checks.
func newReadinessGate(client string, p config.PipelineConfig, checks bool) (*readinessGate, error) {
	g := &readinessGate{
		client:       client,
		pipeline:     p.Name,
		cfg:          p.Wait,
		queueType:    p.Queue.Type,
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

// use makes the gate count and log what it decides through f's counters,
// log and metrics, and count a wait queue's messages with depth.
func (g *readinessGate) use(f *flow, depth func(ctx context.Context, queue string) (int, error)) {
	g.stats, g.log, g.throttle, g.metrics, g.depth = &f.p.stats, f.log, f.throttle, f.metrics, depth
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
	if g.queueType != config.QueueQuorum {
		return true
	}
	for _, t := range g.cfg.Tiers {
		if pulse.TierName(t) != tier {
			continue
		}
		queue := pulse.WaitQueue(g.client, g.pipeline, t)
		ctx, cancel := context.WithTimeout(ctx, countWithin)
		n, err := g.depth(ctx, queue)
		cancel()
		if err != nil {
			g.throttle.log(slog.LevelWarn, "count "+queue, "cannot count the wait queue after a nack; trying the publish again", "pipeline", g.pipeline, "queue", queue, "error", err.Error())
			return false
		}
		return n >= g.cfg.MaxLength
	}
	return true
}

// topology is the gate's part of the pipeline's topology.
func (g *readinessGate) topology() *broker.WaitTopology {
	w := &broker.WaitTopology{Exchange: g.exchange, HoldExchange: g.holdExchange, RetryKey: pulse.RetryKey, MaxLength: g.cfg.MaxLength, MaxBytes: g.cfg.MaxBytes}
	for _, tier := range g.cfg.Tiers {
		w.Queues = append(w.Queues, broker.WaitQueue{Name: pulse.WaitQueue(g.client, g.pipeline, tier), Key: pulse.TierName(tier), TTL: tier})
	}
	return w
}

// verdict is what the gate decided for a message.
type verdict struct {
	kind verdictKind
	// tier and waitingFor say, for hold, the wait queue's tier and what
	// the message waits for.
	tier       time.Duration
	waitingFor string
	// unconfirmed are, for publish past the deadline with on_deadline
	// publish, the artifact URLs that never answered ready.
	unconfirmed []string
	// refusal is, for refuse, why.
	refusal error
}

// verdictKind is what becomes of a message.
type verdictKind int

const (
	// publish: the outputs go out now.
	publish verdictKind = iota
	// hold: the message waits in the wait queue of a tier.
	hold
	// refuse: the message is parked.
	refuse
)

// admit checks the artifacts of a message's outputs, within the check
// budget, and decides: all ready, publish; some missing before the
// deadline, hold it in the tier of its next wait; some missing past the
// deadline, refuse it (artifacts_missing) or, with on_deadline publish,
// publish it with the URLs that never answered; a URL the policy does
// not let the gate check, refuse it (bad_artifact_url).
func (g *readinessGate) admit(ctx context.Context, src origin, routed []process.Routed, now time.Time) verdict {
	if g.checker == nil {
		return verdict{kind: publish}
	}
	urls := waitURLs(routed)
	if len(urls) == 0 {
		return verdict{kind: publish}
	}
	missing := g.check(ctx, urls)
	if len(missing) == 0 {
		return verdict{kind: publish}
	}
	for _, r := range missing {
		if r.Outcome == gate.Forbidden {
			return verdict{kind: refuse, refusal: translator.Refuse(pulse.ClassBadArtifactURL, "the artifact check of %s may not go where it leads: %s", termtext.Truncate(r.RedactedURL(), 300), r.Detail)}
		}
	}
	elapsed := now.Sub(src.firstSeen)
	if elapsed >= g.cfg.Deadline {
		g.stats.Expired.Add(1)
		if g.cfg.OnDeadline == config.OnDeadlinePublish {
			v := verdict{kind: publish}
			for _, r := range missing {
				v.unconfirmed = append(v.unconfirmed, r.URL)
			}
			return v
		}
		return verdict{kind: refuse, refusal: &missingArtifacts{
			Refusal: &translator.Refusal{Class: pulse.ClassArtifactsMissing, Reason: fmt.Sprintf(
				"artifacts still missing %s after the message was first seen (deadline %s, %d checks): %s",
				elapsed.Round(time.Millisecond), g.cfg.Deadline, src.attempt+1, describeMissing(missing))},
			waitingFor: describeMissing(missing),
		}}
	}
	return verdict{kind: hold, tier: g.nextTier(src, elapsed), waitingFor: describeMissing(missing)}
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

// refused decides for a message whose outputs the broker nacked, or did
// not confirm within the publish timeout: a queue bound to the output
// exchange refused them (a consumer's queue at its length limit with
// x-overflow reject-publish, a quorum queue without a leader) or does not
// answer. The consumers whose queues took them have them; the message is
// held, to publish its outputs again when it returns, so that one
// consumer's queue neither holds up the pipeline nor loses that consumer
// a message before the deadline. Past the deadline it is refused as
// unpublishable, to be replayed.
func (g *readinessGate) refused(src origin, now time.Time, err error) verdict {
	label, waitingFor, cause, hint := "nack", refusedOutputs, refusedCause, refusedHint
	if errors.Is(err, broker.ErrNoConfirm) {
		label, waitingFor, cause, hint = "no_confirm", unconfirmedOutputs, unconfirmedCause, unconfirmedHint
	}
	g.stats.Refused.Add(1)
	if g.metrics != nil {
		g.metrics.OutputsRefused.WithLabelValues(g.pipeline, label).Inc()
	}
	elapsed := now.Sub(src.firstSeen)
	if elapsed >= g.cfg.Deadline {
		return verdict{kind: refuse, refusal: translator.Refuse(pulse.ClassUnpublishable, "%s, at pass %d, %s after the message was first seen (deadline %s); the consumers whose queues took them have them. Likely %s; then: pulsetranslator dead replay",
			cause, src.attempt+1, elapsed.Round(time.Millisecond), g.cfg.Deadline, hint)}
	}
	tier := g.nextTier(src, elapsed)
	g.stats.Retried.Add(1)
	if g.metrics != nil {
		g.metrics.Retries.WithLabelValues(g.pipeline, string(toOutput)).Inc()
	}
	g.throttle.log(slog.LevelWarn, "refused outputs "+cause, cause+"; the consumers whose queues took them have them, and the message waits to publish them again",
		"pipeline", g.pipeline, "routing_key", termtext.Truncate(src.routingKey, 255), "tier", pulse.TierName(tier), "attempt", src.attempt+1, "likely", hint)
	return verdict{kind: hold, tier: tier, waitingFor: waitingFor}
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
			g.throttle.log(slog.LevelInfo, "check "+host, "artifact check failed", "pipeline", g.pipeline, "host", host, "url", termtext.Truncate(r.RedactedURL(), 300), "detail", r.Detail)
		} else if g.log.Enabled(ctx, slog.LevelDebug) {
			// Checked first: the arguments of a disabled Debug are still
			// boxed, for every check.
			g.log.Debug("artifact check", "url", r.RedactedURL(), "outcome", r.Outcome.String(), "detail", r.Detail)
		}
		if r.Outcome != gate.Ready {
			missing = append(missing, r)
		}
		if g.metrics != nil {
			g.metrics.GateChecks.WithLabelValues(g.pipeline, r.Outcome.String()).Inc()
		}
	}
	return missing
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
