package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/broker"
)

// Dial opens a plain amqp091-go connection with the config's URL and TLS
// settings, for the commands that inspect queues. Errors never show the
// password.
func (c *Config) Dial() (*amqp.Connection, error) {
	var tlsCfg *tls.Config
	if c.usesTLS() {
		var err error
		if tlsCfg, err = c.clientTLS(); err != nil {
			return nil, err
		}
	}
	conn, err := amqp.DialConfig(c.Connection, *c.amqpConfig("pulsetranslator tools", tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", RedactURL(c.Connection), explainTLS(err))
	}
	return conn, nil
}

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

// DeadReader reads a pipeline's dead queue on a channel of its own. The
// messages it reads stay unacknowledged, and return to the queue, in
// order, when it is closed, unless they were replayed.
type DeadReader struct {
	ch           *amqp.Channel
	queue        string
	waitExchange string
	confirms     bool
	returns      chan amqp.Return
}

// OpenDeadReader opens the dead queue of a pipeline of cfg.
func OpenDeadReader(conn *amqp.Connection, cfg *Config, pipeline string) (*DeadReader, error) {
	found := false
	for _, p := range cfg.Pipelines {
		found = found || p.Name == pipeline
	}
	if !found {
		return nil, fmt.Errorf("no pipeline %q in %s", pipeline, cfg.Source())
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	return &DeadReader{ch: ch, queue: DeadQueue(cfg.ClientID, pipeline), waitExchange: WaitExchange(cfg.ClientID, pipeline)}, nil
}

// Read takes up to limit messages from the head of the queue.
func (d *DeadReader) Read(limit int) ([]Parked, error) {
	var out []Parked
	for len(out) < limit {
		msg, ok, err := d.ch.Get(d.queue, false)
		if err != nil {
			return out, fmt.Errorf("read %s: %w", d.queue, err)
		}
		if !ok {
			break
		}
		out = append(out, describeParked(len(out)+1, msg))
	}
	return out, nil
}

// describeParked reads what a parked copy's headers say about it.
func describeParked(position int, d amqp.Delivery) Parked {
	str := func(key string) string {
		if v, ok := d.Headers[key].(string); ok {
			return v
		}
		return ""
	}
	p := Parked{Position: position, Delivery: d, Class: str(HeaderClass), Reason: str(HeaderReason), ParkedAt: d.Timestamp,
		SourceExchange: str(broker.MetaExchange), SourceRoutingKey: str(broker.MetaRoutingKey)}
	if p.SourceRoutingKey == "" {
		p.SourceRoutingKey = d.RoutingKey
	}
	// Dead-lettered by the broker (the input queue overflowed).
	if deaths, ok := d.Headers["x-death"].([]interface{}); ok && len(deaths) > 0 && p.Class == "" {
		if death, ok := deaths[0].(amqp.Table); ok {
			p.Class, _ = death["reason"].(string)
			p.Reason = "dead-lettered by the broker: " + p.Class
			if t, ok := death["time"].(time.Time); ok {
				p.ParkedAt = t
			}
			if p.SourceExchange == "" {
				p.SourceExchange, _ = death["exchange"].(string)
			}
		}
	}
	if p.SourceExchange == "" {
		p.SourceExchange = str("x-first-death-exchange")
	}
	return p
}

// Replay publishes each parked message back into the pipeline's input
// queue, through its wait exchange, with its original exchange and routing
// key, and removes it from the dead queue once the broker has confirmed
// the copy. It returns how many it replayed.
func (d *DeadReader) Replay(ctx context.Context, parked []Parked) (int, error) {
	if !d.confirms {
		if err := d.ch.Confirm(false); err != nil {
			return 0, err
		}
		d.returns = d.ch.NotifyReturn(make(chan amqp.Return, 1))
		d.confirms = true
	}
	for i, p := range parked {
		if p.SourceExchange == "" {
			return i, fmt.Errorf("message %d says nothing of the exchange it came from; it cannot be replayed", p.Position)
		}
		contentType, _ := p.Delivery.Headers[broker.MetaContentType].(string)
		if contentType == "" {
			contentType = p.Delivery.ContentType
		}
		dc, err := d.ch.PublishWithDeferredConfirmWithContext(ctx, d.waitExchange, RetryKey, true, false, amqp.Publishing{
			ContentType: contentType, DeliveryMode: amqp.Persistent, Body: p.Delivery.Body, Timestamp: time.Now(),
			Headers: amqp.Table{HeaderSourceExchange: p.SourceExchange, HeaderSourceRoutingKey: p.SourceRoutingKey},
		})
		if err != nil {
			return i, fmt.Errorf("replay message %d: %w", p.Position, err)
		}
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			return i, fmt.Errorf("replay message %d: %w", p.Position, err)
		}
		if !acked {
			return i, fmt.Errorf("replay message %d: %w", p.Position, broker.ErrNacked)
		}
		// The broker returns a message it cannot route before it confirms it.
		select {
		case <-d.returns:
			return i, fmt.Errorf("replay message %d: nothing is bound to %s with %q; run the pipeline once so that it declares its topology", p.Position, d.waitExchange, RetryKey)
		default:
		}
		if err := p.Delivery.Ack(false); err != nil {
			return i + 1, fmt.Errorf("message %d was replayed but stays in the dead queue too: %w", p.Position, err)
		}
	}
	return len(parked), nil
}

// Close returns the messages read and not replayed to the queue.
func (d *DeadReader) Close() error {
	err := d.ch.Close()
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
