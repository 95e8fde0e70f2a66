// Package deadqueue reads a pipeline's dead queue and replays parked
// messages into its input: what "pulsetranslator dead" does.
package deadqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Parked is one message in a pipeline's dead queue.
type Parked struct {
	// Position is its place in the queue as read, from 1.
	Position int
	// Class and Reason say why it was parked; for a message the input
	// queue overflowed, the class is "maxlen".
	Class, Reason string
	// SourceExchange and SourceRoutingKey are where it was first published.
	SourceExchange, SourceRoutingKey string
	// ParkedAt is when it was parked, where the broker or publisher said.
	ParkedAt time.Time
	// Delivery is the message as the dead queue holds it.
	Delivery amqp.Delivery
}

// Reader reads a pipeline's dead queue on a channel of its own. The
// messages it reads stay unacknowledged, and return to the queue, in
// order, when it is closed, unless they were replayed.
type Reader struct {
	// AnswerWithin bounds how long one read waits for the broker's
	// answer. Optional, default DefaultAnswerWithin.
	AnswerWithin time.Duration

	ch           *amqp.Channel
	pipeline     config.PipelineConfig
	queue        string
	holdExchange string
	confirms     bool
	returns      chan amqp.Return
	closed       chan *amqp.Error
	// unanswered is set when a read went unanswered: the channel waits
	// for the queue, and closing it would wait too.
	unanswered bool
}

// DefaultAnswerWithin is how long a read of the dead queue waits for the
// broker by default: far longer than any answer takes, short enough for
// an operator to be told why nothing came.
const DefaultAnswerWithin = 30 * time.Second

// Open opens the dead queue of the named pipeline of cfg.
func Open(conn *amqp.Connection, cfg *config.Config, name string) (*Reader, error) {
	i := slices.IndexFunc(cfg.Pipelines, func(p config.PipelineConfig) bool { return p.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("no pipeline %q in %s", name, cfg.Source())
	}
	queue := pulse.DeadQueue(cfg.ClientID, name)
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	return &Reader{ch: ch, pipeline: cfg.Pipelines[i], queue: queue, holdExchange: pulse.HoldExchange(cfg.ClientID, name)}, nil
}

// Count returns how many messages a queue of cfg's pipelines holds (ready
// for a consumer), by a passive declare on a channel of its own, waiting
// at most within for the broker's answer. A queue that does not exist is
// an error that says what decides its name and what to do.
func Count(conn *amqp.Connection, cfg *config.Config, queue string, within time.Duration) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	q, err := broker.Within(within, func() (amqp.Queue, error) {
		defer ch.Close()
		return ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	})
	var ae *amqp.Error
	switch {
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return 0, MissingError(cfg, "queue", queue)
	case errors.Is(err, broker.ErrNoAnswer):
		return 0, fmt.Errorf("the queue %s did not answer within %s (--timeout); %s", queue, within, broker.UnresponsiveQueueHint)
	case err != nil:
		return 0, fmt.Errorf("read %s: %w", queue, err)
	}
	return q.Messages, nil
}

// MissingErr is a queue or exchange of a config's client that the broker
// does not have.
type MissingErr struct {
	// Kind is queue or exchange; Name, its name.
	Kind, Name string
	// ClientID and Source are the config's client id and where the config
	// came from.
	ClientID, Source string
}

// Error says what names it (the client id, from which config) and what to
// do.
func (e *MissingErr) Error() string {
	return fmt.Sprintf("the broker has no %s %s. Its name comes from the client id %q (client_id of %s, or PULSE_CLIENT_ID) and the pipeline; "+
		"a pipeline declares its queues and exchanges when it first runs (pulsetranslator run --config FILE). "+
		"Check that --config names the config of the running pipeline, and that the broker is the one it uses",
		e.Kind, e.Name, e.ClientID, e.Source)
}

// MissingError explains a queue or exchange of cfg's client that the
// broker does not have: the client id (from the config, or
// PULSE_CLIENT_ID) names it, and a pipeline declares it when it first
// runs.
func MissingError(cfg *config.Config, kind, name string) error {
	return &MissingErr{Kind: kind, Name: name, ClientID: cfg.ClientID, Source: cfg.Source()}
}

// Read takes up to limit messages from the head of the queue. A read the
// broker does not answer within AnswerWithin (RabbitMQ can leave a queue
// whose process answers nothing) ends it with an error that says so and
// how to find such a queue, with what was read before.
func (d *Reader) Read(limit int) ([]Parked, error) {
	var out []Parked
	for len(out) < limit {
		msg, ok, err := d.get()
		if err != nil {
			return out, err
		}
		if !ok {
			break
		}
		out = append(out, describeParked(d.pipeline, len(out)+1, msg))
	}
	return out, nil
}

// get reads the message at the head of the queue, within AnswerWithin.
// An unanswered read goes on in the background until the broker answers
// or the connection closes.
func (d *Reader) get() (amqp.Delivery, bool, error) {
	type reading struct {
		msg amqp.Delivery
		ok  bool
	}
	within := d.AnswerWithin
	if within <= 0 {
		within = DefaultAnswerWithin
	}
	r, err := broker.Within(within, func() (reading, error) {
		msg, ok, err := d.ch.Get(d.queue, false)
		return reading{msg, ok}, err
	})
	switch {
	case errors.Is(err, broker.ErrNoAnswer):
		d.unanswered = true
		return amqp.Delivery{}, false, fmt.Errorf("the dead queue %s did not answer a read within %s; %s", d.queue, within, broker.UnresponsiveQueueHint)
	case err != nil:
		return r.msg, false, fmt.Errorf("read %s: %w", d.queue, err)
	}
	return r.msg, r.ok, nil
}

// describeParked reads what a parked copy's headers say about it. A copy
// the translator parked carries its own headers (upstream headers of the
// same names were renamed). A message the broker dead-lettered (the input
// queue overflowed) carries the upstream headers as they came, with the
// broker's x-death entries merged into any x-death that upstream wrote:
// its routing key is the broker's, but its exchange and time may be
// upstream's. Either way, the origin is taken only when p binds it for
// that routing key (see config.PipelineConfig.BoundOrigin); a claimed
// exchange it does not bind gives way to the one it binds for the key,
// or, when there is none, to none at all, and the time of an x-death
// entry that claimed another exchange is not shown.
func describeParked(p config.PipelineConfig, position int, d amqp.Delivery) Parked {
	str := func(t amqp.Table, key string) string {
		if v, ok := t[key].(string); ok {
			return v
		}
		return ""
	}
	parked := Parked{Position: position, Delivery: d, ParkedAt: d.Timestamp}
	deaths, _ := d.Headers["x-death"].([]interface{})
	if len(deaths) == 0 {
		parked.Class, parked.Reason = str(d.Headers, pulse.HeaderClass), str(d.Headers, pulse.HeaderReason)
		claimed, key := str(d.Headers, pulse.HeaderOriginExchange), str(d.Headers, pulse.HeaderOriginRoutingKey)
		if key == "" {
			key = d.RoutingKey
		}
		parked.SourceRoutingKey = key
		parked.SourceExchange, _ = p.BoundOrigin(claimed, key)
		return parked
	}
	// Dead-lettered by the broker, which kept the routing key.
	parked.SourceRoutingKey = d.RoutingKey
	claimed := ""
	if death, ok := deaths[0].(amqp.Table); ok {
		parked.Class = str(death, "reason")
		parked.Reason = brokerReason(parked.Class)
		claimed = str(death, "exchange")
		if t, ok := death["time"].(time.Time); ok {
			parked.ParkedAt = t
		}
	}
	exchange, ok := p.BoundOrigin(claimed, parked.SourceRoutingKey)
	if !ok || exchange != claimed {
		// Upstream wrote this entry, or merged into it: its time is theirs.
		parked.ParkedAt = time.Time{}
	}
	parked.SourceExchange = exchange
	return parked
}

// Replay publishes each parked message back into the pipeline's input
// queue, through its hold exchange (which no other client may bind a
// queue to, and so refuse the copy), with its original exchange and
// routing key, and removes it from the dead queue once the broker has
// confirmed the copy. It returns how many it replayed.
func (d *Reader) Replay(ctx context.Context, parked []Parked) (int, error) {
	if !d.confirms {
		if err := d.ch.Confirm(false); err != nil {
			return 0, err
		}
		d.returns = d.ch.NotifyReturn(make(chan amqp.Return, 1))
		d.closed = d.ch.NotifyClose(make(chan *amqp.Error, 1))
		d.confirms = true
	}
	for i, p := range parked {
		if size, cut := p.Delivery.Headers[pulse.HeaderOriginalBytes]; cut {
			return i, fmt.Errorf("message %d keeps only the first %d bytes of a body of %v bytes (over limits.max_input_bytes); it cannot be replayed", p.Position, len(p.Delivery.Body), size)
		}
		if p.SourceExchange == "" {
			return i, fmt.Errorf("message %d (routing key %q) came from no exchange the pipeline binds for that key (its x-death or headers name another, or none); it cannot be replayed into it", p.Position, p.SourceRoutingKey)
		}
		contentType := p.Delivery.ContentType
		dc, err := d.ch.PublishWithDeferredConfirmWithContext(ctx, d.holdExchange, pulse.RetryKey, true, false, amqp.Publishing{
			ContentType: contentType, DeliveryMode: amqp.Persistent, Body: p.Delivery.Body, Timestamp: time.Now(),
			Headers: amqp.Table{pulse.HeaderSourceExchange: p.SourceExchange, pulse.HeaderSourceRoutingKey: p.SourceRoutingKey},
		})
		if err != nil {
			return i, fmt.Errorf("replay message %d: %w", p.Position, err)
		}
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			return i, fmt.Errorf("replay message %d: %w", p.Position, err)
		}
		if !acked {
			select {
			case e := <-d.closed:
				if e != nil && e.Code == amqp.NotFound {
					return i, fmt.Errorf("replay message %d: there is no exchange %s; run the pipeline once (this version) so that it declares its topology: %w", p.Position, d.holdExchange, e)
				}
				return i, fmt.Errorf("replay message %d: the broker closed the channel: %w", p.Position, e)
			case <-time.After(100 * time.Millisecond):
			}
			return i, fmt.Errorf("replay message %d: %w", p.Position, broker.ErrNacked)
		}
		// The broker returns a message it cannot route before it confirms it.
		select {
		case <-d.returns:
			return i, fmt.Errorf("replay message %d: nothing is bound to %s with %q; run the pipeline once so that it declares its topology", p.Position, d.holdExchange, pulse.RetryKey)
		default:
		}
		if err := p.Delivery.Ack(false); err != nil {
			return i + 1, fmt.Errorf("message %d was replayed but stays in the dead queue too: %w", p.Position, err)
		}
	}
	return len(parked), nil
}

// Close returns the messages read and not replayed to the queue. After
// a read that went unanswered it does not wait for the broker: the
// channel closes in the background, and the messages return to the
// queue once it does.
func (d *Reader) Close() error {
	if d.unanswered {
		go d.ch.Close()
		return nil
	}
	err := d.ch.Close()
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}

// brokerReason says why the broker dead-lettered a message, by its
// x-death reason, and what to do.
func brokerReason(class string) string {
	switch class {
	case "maxlen":
		return "dead-lettered by the broker: the input queue was full (queue.max_length) and this was its oldest message; the translator fell behind its stream: replay it once the backlog is gone"
	case "delivery_limit":
		return "dead-lettered by the broker: delivered queue.delivery_limit times, each time without an ack (its consumer crashed or lost its connection holding it); look at the translator's logs from when it was taken, then replay it"
	case "rejected":
		return "dead-lettered by the broker: the translator rejected it after it could not park it with its headers; see the translator's log"
	case "expired":
		return "dead-lettered by the broker: its time to live ran out"
	}
	return "dead-lettered by the broker: " + class
}
