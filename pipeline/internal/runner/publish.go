package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/backoff"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
)

// target is where a flow publishes: the label of its metrics.
type target string

// Targets of a publish.
const (
	toOutput target = "output"
	toWait   target = "wait"
	toDead   target = "dead"
)

// retryBackoff spaces out the attempts of one publish.
var retryBackoff = backoff.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// publishError is a publish the broker did not take: after every attempt,
// or at once when trying again cannot help.
type publishError struct {
	to       target
	attempts int
	err      error
}

func (e *publishError) Error() string {
	return fmt.Sprintf("the broker did not take the %s publish after %d attempt(s): %v", e.to, e.attempts, e.err)
}

func (e *publishError) Unwrap() error { return e.err }

// publish sends outs to t and returns once the broker has confirmed them
// all. What the broker does not take is tried again, with backoff, up to
// f.attempts times; a missing exchange or queue is declared again first.
// It returns at once when the delivery's channel closes (the broker has
// the input back, to deliver again) with the context's error, and
// otherwise a *publishError.
func (f *flow) publish(ctx context.Context, t target, outs ...broker.Outgoing) error {
	for attempt := 1; ; attempt++ {
		began := time.Now()
		err := f.pub.Publish(ctx, f.publishTimeout, outs...)
		f.observe(t, len(outs), time.Since(began), err)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the delivery's channel closed; the broker will deliver the message again: %w", ctx.Err())
		}
		if !f.retriable(ctx, t, outs[0].RoutingKey, err) || attempt >= f.attempts {
			return &publishError{to: t, attempts: attempt, err: err}
		}
		f.p.stats.Retried.Add(1)
		if f.metrics != nil {
			f.metrics.Retries.WithLabelValues(f.p.cfg.Name, string(t)).Inc()
		}
		f.throttle.log(slog.LevelWarn, "retry "+string(t)+" "+err.Error(), "the broker did not take a publish; trying again",
			"pipeline", f.p.cfg.Name, "target", string(t), "attempt", attempt, "error", err.Error())
		if retryBackoff.Wait(ctx, attempt-1) != nil {
			return fmt.Errorf("the delivery's channel closed; the broker will deliver the message again: %w", ctx.Err())
		}
	}
}

// retriable reports whether trying a failed publish again can help, and
// declares the topology again when the broker said something is missing.
// routingKey is the first publishing's.
func (f *flow) retriable(ctx context.Context, t target, routingKey string, err error) bool {
	var ce *broker.ChannelError
	switch {
	case f.waitsWhenRefused(t, err):
		return false
	case errors.Is(err, broker.ErrNacked):
		// A wait queue at its length limit refuses new messages: waiting
		// is no answer to that. But a quorum queue also nacks for a while
		// after its leader's node is lost, when waiting is the answer.
		return t != toWait || !f.p.gate.full(ctx, routingKey)
	case errors.As(err, &ce) && ce.ByBroker() && ce.Code() == amqp.NotFound:
		// An administrator or a cleanup job deleted an exchange or a
		// queue the pipeline owns: declare them again.
		if derr := f.redeclare(ctx); derr != nil {
			f.throttle.log(slog.LevelWarn, "redeclare "+derr.Error(), "cannot declare the topology again", "pipeline", f.p.cfg.Name, "error", derr.Error())
		}
		return true
	case errors.As(err, &ce) && ce.Refused():
		// The broker refuses this publish as it is.
		return false
	}
	// No connection, a connection lost under the publish (whatever code
	// the client library gives it), or no confirm within the timeout.
	return true
}

// waitsWhenRefused reports whether a failed publish to t is of outputs
// that a queue bound to the output exchange refused (nack) or did not
// confirm in time. Every other queue took them; the message is not tried
// again in hand but waits in a wait queue to publish them again
// (gate.refused), so that a consumer's full or silent queue holds nothing
// in hand for longer than one publish.
func (f *flow) waitsWhenRefused(t target, err error) bool {
	return t == toOutput && (errors.Is(err, broker.ErrNacked) || errors.Is(err, broker.ErrNoConfirm))
}

// observe records one publish attempt in the metrics.
func (f *flow) observe(t target, n int, took time.Duration, err error) {
	if err == nil && t == toOutput {
		f.p.stats.Published.Add(int64(n))
	}
	if f.metrics == nil {
		return
	}
	f.metrics.ConfirmSeconds.WithLabelValues(f.p.cfg.Name).Observe(took.Seconds())
	if err == nil && t == toOutput {
		f.metrics.Published.WithLabelValues(f.p.cfg.Name).Add(float64(n))
	}
}
