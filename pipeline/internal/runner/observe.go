package runner

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
	amqp "github.com/rabbitmq/amqp091-go"
)

// queueWatchInterval is how often the depth of every queue is read.
const queueWatchInterval = 5 * time.Second

// recentLen is how many outputs and parked messages a pipeline keeps to
// show on the live page.
const recentLen = 20

// watchedQueue is one queue of a pipeline whose depth is read.
type watchedQueue struct {
	// role is input, dead or wait/<tier>: the label of the gauges.
	role, name string
	maxLength  int
	// messages is the depth last read, -1 before the first reading.
	messages atomic.Int64
	// answered is when the broker last answered a reading (unix
	// nanoseconds); the watch's start before the first.
	answered atomic.Int64
}

// unansweredFor is how long the queue has not answered a reading of its
// depth, measured from now.
func (q *watchedQueue) unansweredFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, q.answered.Load()))
}

// queuesOf lists the queues of a pipeline, input first.
func queuesOf(p *pipelineRun) []*watchedQueue {
	qs := []*watchedQueue{
		{role: "input", name: p.topology.InputQueue, maxLength: p.topology.MaxLength},
	}
	if p.topology.Wait != nil {
		for _, w := range p.topology.Wait.Queues {
			qs = append(qs, &watchedQueue{role: "wait/" + w.Key, name: w.Name, maxLength: p.topology.Wait.MaxLength})
		}
	}
	qs = append(qs, &watchedQueue{role: "dead", name: p.topology.DeadQueue, maxLength: p.topology.DeadMaxLength})
	now := time.Now().UnixNano()
	for _, q := range qs {
		q.messages.Store(-1)
		q.answered.Store(now)
	}
	return qs
}

// stuckReading is how long a reading of the queues' depths may take
// before watchQueues logs the queue that does not answer.
var stuckReading = 30 * time.Second

// watchQueues reads the depth of every pipeline's queues from the broker
// (passive declares, which change nothing) every queueWatchInterval
// until ctx ends, and keeps the gauges up to date. The depths are read on
// a goroutine of their own: a queue whose process does not answer (RabbitMQ
// 3.10 can leave a classic queue waiting forever on its message store
// after a restart) holds back only the depth readings, never the other
// gauges, and it is logged once it has not answered for stuckReading.
func (r *Runner) watchQueues(ctx context.Context) {
	if m := r.metrics; m != nil {
		for _, p := range r.pipelines {
			for _, q := range p.queues {
				m.QueueMaxLength.WithLabelValues(p.cfg.Name, q.role).Set(float64(q.maxLength))
			}
		}
	}
	var ch *amqp.Channel
	var on *broker.Session
	// reading is the reading under way (nil when none), which gives back
	// its channel; asking is the queue it waits for.
	var reading chan *amqp.Channel
	var asking atomic.Pointer[watchedQueue]
	var since time.Time
	warned := false
	tick := time.NewTicker(queueWatchInterval)
	defer tick.Stop()
	for {
		if reading != nil {
			select {
			case ch = <-reading:
				reading = nil
				if warned {
					r.log.Info("the broker answers the queue depth readings again")
				}
				warned = false
			default:
				if q := asking.Load(); !warned && q != nil && time.Since(since) > stuckReading {
					r.log.Warn("a queue does not answer: its depth has not been read for "+stuckReading.String()+"; "+broker.UnresponsiveQueueHint,
						"queue", q.name)
					warned = true
				}
			}
		}
		if s := r.conn.Current(); s != nil && reading == nil {
			if on != s || ch == nil || ch.IsClosed() {
				ch, _ = s.Conn.Channel()
				on = s
			}
			if ch != nil {
				reading, since = make(chan *amqp.Channel, 1), time.Now()
				go func(ch *amqp.Channel, done chan<- *amqp.Channel) {
					ch = r.readDepths(ch, s, &asking)
					r.updateGauges()
					done <- ch
				}(ch, reading)
				ch = nil
			}
		}
		r.updateGauges()
		select {
		case <-tick.C:
		case <-ctx.Done():
			if reading != nil {
				select {
				case ch = <-reading:
				default:
					return // the reading's channel goes with its connection
				}
			}
			if ch != nil {
				_ = ch.Close()
			}
			return
		}
	}
}

// readDepths reads every queue's depth on ch, noting in asking the queue
// it waits for. A queue that is missing closes the channel; the others
// are read on a new one.
func (r *Runner) readDepths(ch *amqp.Channel, s *broker.Session, asking *atomic.Pointer[watchedQueue]) *amqp.Channel {
	defer asking.Store(nil)
	for _, p := range r.pipelines {
		for _, q := range p.queues {
			if ch == nil || ch.IsClosed() {
				var err error
				if ch, err = s.Conn.Channel(); err != nil {
					return nil
				}
			}
			asking.Store(q)
			info, err := ch.QueueDeclarePassive(q.name, true, false, false, false, nil)
			if err != nil {
				continue
			}
			q.messages.Store(int64(info.Messages))
			q.answered.Store(time.Now().UnixNano())
		}
	}
	return ch
}

// updateGauges copies the readings and counters into the gauges.
func (r *Runner) updateGauges() {
	m := r.metrics
	if m == nil {
		return
	}
	ready := 0.0
	if r.Ready() {
		ready = 1
	}
	m.Ready.Set(ready)
	blocked := 0.0
	if r.conn.Blocked() {
		blocked = 1
	}
	m.BrokerBlocked.Set(blocked)
	for _, p := range r.pipelines {
		m.InFlight.WithLabelValues(p.cfg.Name).Set(float64(p.stats.InFlight.Load()))
		if p.gate.checker != nil {
			m.GateHostsFailing.WithLabelValues(p.cfg.Name).Set(float64(p.gate.checker.FailingHosts()))
		}
		for _, q := range p.queues {
			if n := q.messages.Load(); n >= 0 {
				m.QueueMessages.WithLabelValues(p.cfg.Name, q.role).Set(float64(n))
			}
		}
	}
}

// RecentOutput is an output the broker confirmed, as the live page
// shows it.
type RecentOutput struct {
	At         time.Time `json:"at"`
	Exchange   string    `json:"exchange"`
	RoutingKey string    `json:"routing_key"`
	CC         []string  `json:"cc"`
	// MessageID is the output's message id; Source, the routing key of
	// the raw message it came from: what tells rows apart.
	MessageID string `json:"message_id"`
	Source    string `json:"source"`
	// Preview is the payload's start (inside its envelope).
	Preview string `json:"preview"`
}

// RecentParked is a parked message, as the live page shows it.
type RecentParked struct {
	At         time.Time `json:"at"`
	Class      string    `json:"class"`
	Reason     string    `json:"reason"`
	RoutingKey string    `json:"routing_key"`
}

// recent keeps the last outputs and parked messages of a pipeline.
type recent struct {
	mu      sync.Mutex
	outputs window[RecentOutput]
	parked  window[RecentParked]
}

// window keeps the last recentLen items added to it, in order, in one
// array of twice that length: an add moves the items only when the
// array is full, and never allocates after the first.
type window[T any] struct {
	items []T
}

func (w *window[T]) add(v T) {
	switch len(w.items) {
	case 0:
		w.items = make([]T, 0, 2*recentLen)
	case 2 * recentLen:
		w.items = append(w.items[:0], w.items[recentLen:]...)
	}
	w.items = append(w.items, v)
}

// last returns a copy of the last recentLen items, oldest first.
func (w *window[T]) last() []T {
	return slices.Clone(w.items[max(len(w.items)-recentLen, 0):])
}

// previewLen bounds the payload preview of a recent output.
const previewLen = 300

// addOutputs records the outputs of a raw message of routing key source,
// once confirmed.
func (rc *recent) addOutputs(outs []broker.Outgoing, source string) {
	now := time.Now().UTC()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, o := range outs {
		// Every mozillapulse body starts with the same envelope: the
		// preview starts inside it.
		body := bytes.TrimPrefix(o.Body, []byte(`{"payload":`))
		rc.outputs.add(RecentOutput{At: now, Exchange: o.Exchange, RoutingKey: o.RoutingKey, CC: o.CC, MessageID: o.MessageID,
			Source: termtext.Truncate(source, 255), Preview: termtext.Truncate(body, previewLen)})
	}
}

func (rc *recent) addParked(class, reason, routingKey string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.parked.add(RecentParked{At: time.Now().UTC(), Class: class, Reason: termtext.Truncate(reason, previewLen), RoutingKey: termtext.Truncate(routingKey, 255)})
}

// Status is what the live page shows: every pipeline, its counters, its
// queues and what it did last. It never holds the connection string.
type Status struct {
	ClientID string `json:"client_id"`
	Ready    bool   `json:"ready"`
	Node     string `json:"node"`
	// Blocked is true while RabbitMQ blocks publishing on the connection
	// (a memory or disk alarm).
	Blocked   bool             `json:"blocked"`
	Pipelines []PipelineStatus `json:"pipelines"`
}

// PipelineStatus is one pipeline of a Status.
type PipelineStatus struct {
	Name       string `json:"name"`
	Translator string `json:"translator"`
	Consumed   int64  `json:"consumed"`
	Published  int64  `json:"published"`
	Dropped    int64  `json:"dropped"`
	Parked     int64  `json:"parked"`
	Waited     int64  `json:"waited"`
	Retried    int64  `json:"retried"`
	// Refused counts publishes of outputs a consumer's queue refused or
	// did not confirm in time.
	Refused  int64          `json:"refused"`
	InFlight int64          `json:"in_flight"`
	Queues   []QueueStatus  `json:"queues"`
	Outputs  []RecentOutput `json:"outputs"`
	Parks    []RecentParked `json:"parks"`
}

// QueueStatus is one queue of a pipeline: its depth, -1 before the
// first reading.
type QueueStatus struct {
	Role      string `json:"role"`
	Name      string `json:"name"`
	Messages  int64  `json:"messages"`
	MaxLength int    `json:"max_length"`
}

// Status returns the runner's status now.
func (r *Runner) Status() Status {
	st := Status{ClientID: r.cfg.ClientID, Ready: r.Ready(), Blocked: r.conn.Blocked()}
	if s := r.conn.Current(); s != nil {
		st.Node = config.HostOf(s.Address.URL)
	}
	for _, p := range r.pipelines {
		ps := PipelineStatus{
			Name: p.cfg.Name, Translator: p.cfg.Translator,
			Consumed: p.stats.Received.Load(), Published: p.stats.Published.Load(), Dropped: p.stats.Dropped.Load(),
			Parked: p.stats.Parked.Load(), Waited: p.stats.Waited.Load(), Retried: p.stats.Retried.Load(), Refused: p.stats.Refused.Load(), InFlight: p.stats.InFlight.Load(),
		}
		for _, q := range p.queues {
			ps.Queues = append(ps.Queues, QueueStatus{Role: q.role, Name: q.name, Messages: q.messages.Load(), MaxLength: q.maxLength})
		}
		p.recent.mu.Lock()
		ps.Outputs = p.recent.outputs.last()
		ps.Parks = p.recent.parked.last()
		p.recent.mu.Unlock()
		st.Pipelines = append(st.Pipelines, ps)
	}
	return st
}
