package runner

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	amqp "github.com/rabbitmq/amqp091-go"
)

// A quorum wait queue hands expired messages back through RabbitMQ's
// at-least-once dead-letter worker, which, after some node losses, stalls
// for minutes (see docs/cluster.md); the messages are in none of the
// counts a client can read. So each process sends a canary through its
// first wait tier every canaryInterval, and notes whenever a waiting
// message or a canary comes back. When none has come back for longer
// than overdueAfter, waiting messages are overdue: /readyz says so, the
// log warns once, and pulsetranslator_wait_last_return_timestamp_seconds
// stops moving (the alert PulsetranslatorWaitersOverdue).

// canaryInterval is how often each process sends a canary per pipeline.
var canaryInterval = time.Minute

// waitWatch notes when waiting messages come back to one pipeline.
type waitWatch struct {
	// lastReturn is when a waiting message or canary last came back, in
	// Unix nanoseconds; the start of the watch before the first.
	lastReturn atomic.Int64
	// warned is set while the overdue warning has been logged.
	warned atomic.Bool
	// sending is set while a canary's publish waits for its confirm.
	sending atomic.Bool
}

// overdueAfter is how long a pipeline may see nothing come back from its
// wait queues before its waiters are taken for overdue: the first tier's
// TTL plus three canary intervals (a canary may come back to another
// replica).
func (p *pipelineRun) overdueAfter() time.Duration {
	return p.gate.cfg.Tiers[0] + 3*canaryInterval
}

// returned notes a message back from a wait queue at now, due at due (zero
// when unknown).
func (f *flow) returned(now, due time.Time) {
	f.p.waits.lastReturn.Store(now.UnixNano())
	if f.p.waits.warned.Swap(false) {
		f.log.Info("waiting messages come back from the wait queues again")
	}
	if f.metrics == nil {
		return
	}
	f.metrics.WaitLastReturn.WithLabelValues(f.p.cfg.Name).Set(float64(now.UnixNano()) / 1e9)
	if !due.IsZero() {
		f.metrics.WaitLateness.WithLabelValues(f.p.cfg.Name).Observe(max(now.Sub(due), 0).Seconds())
	}
}

// waitersOverdue says, for a pipeline whose waiting messages have not come
// back for longer than overdueAfter, what that means and what to do; ""
// otherwise.
func (p *pipelineRun) waitersOverdue(now time.Time) string {
	since := now.Sub(time.Unix(0, p.waits.lastReturn.Load()))
	if since <= p.overdueAfter() {
		return ""
	}
	return fmt.Sprintf("pipeline %s: nothing has come back from its wait queues for %s, though a canary goes through %s every %s: "+
		"waiting messages are overdue (after a node loss, RabbitMQ's dead-letter worker of a quorum wait queue can stall; see docs/cluster.md)",
		p.cfg.Name, since.Round(time.Second), pulse.TierName(p.gate.cfg.Tiers[0]), canaryInterval)
}

// sendCanaries sends a canary through the first wait tier of every
// pipeline each canaryInterval, the first one interval after the start,
// and warns once when a pipeline's waiters are overdue, until ctx ends.
// A canary's publish runs on its own, one at a time per pipeline: a wait
// queue that does not confirm holds up nothing.
func (r *Runner) sendCanaries(ctx context.Context) {
	now := time.Now().UnixNano()
	for _, p := range r.pipelines {
		p.waits.lastReturn.Store(now)
	}
	tick := time.NewTicker(canaryInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		for _, p := range r.pipelines {
			if r.conn.Current() != nil && !p.waits.sending.Swap(true) {
				go func() {
					defer p.waits.sending.Store(false)
					r.sendCanary(ctx, p)
				}()
			}
			if why := p.waitersOverdue(time.Now()); why != "" && !p.waits.warned.Swap(true) {
				r.log.Warn(why)
			}
		}
	}
}

// sendCanary publishes one canary: no body to speak of, due back after
// the first tier's TTL.
func (r *Runner) sendCanary(ctx context.Context, p *pipelineRun) {
	now := time.Now()
	tier := p.gate.cfg.Tiers[0]
	err := r.pub.Publish(ctx, r.cfg.PublishTimeout, broker.Outgoing{
		Exchange:    p.gate.holdExchange,
		RoutingKey:  pulse.TierName(tier),
		ContentType: "application/json",
		MessageID:   "canary-" + strconv.FormatInt(now.UnixNano(), 36),
		Headers: amqp.Table{
			pulse.HeaderCanary: now.UTC().Format(time.RFC3339Nano),
			pulse.HeaderDue:    now.Add(tier).UTC().Format(time.RFC3339Nano),
		},
		Body: []byte("{}"),
	})
	if err != nil && ctx.Err() == nil {
		r.throttle.log(slog.LevelDebug, "canary "+p.cfg.Name, "cannot send a canary through the wait queues", "pipeline", p.cfg.Name, "error", err.Error())
	}
}

// canaryDue reports whether d is one of the pipeline's canaries, back from
// its wait queue, and when it was due. Only a delivery from the
// pipeline's hold exchange, which no one else may write to, is one:
// upstream cannot pass a message off as a canary.
func (p *pipelineRun) canaryDue(d *broker.Delivery) (time.Time, bool) {
	if d.Exchange != p.gate.holdExchange {
		return time.Time{}, false
	}
	if _, ok := d.Headers[pulse.HeaderCanary]; !ok {
		return time.Time{}, false
	}
	return dueOf(d.Headers), true
}
