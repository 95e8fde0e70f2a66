package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNacked is returned when the broker refuses (nacks) a publish.
var ErrNacked = errors.New("the broker nacked the publish")

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("publisher is closed")

// Publisher publishes on confirm channels over a watermill-amqp connection
// (shared with the subscribers, and reconnected by it). One Publish call
// sends all its messages, then waits for all their confirms together, so a
// message that fans out to many outputs costs one round trip, and
// concurrent callers each use their own channel from a pool. It implements
// message.Publisher.
type Publisher struct {
	conn      *wamqp.ConnectionWrapper
	marshaler wamqp.Marshaler
	timeout   time.Duration
	logger    watermill.LoggerAdapter

	// Observe, when set, is called after every Publish with the exchange
	// of each message, how long the publish and its confirms took, and
	// the error (nil when every message was confirmed).
	Observe func(exchanges []string, took time.Duration, err error)

	mu          sync.Mutex
	idle        []*amqp.Channel
	watchedConn *amqp.Connection
	closed      bool
}

// NewPublisher returns a Publisher on conn. timeout bounds one Publish
// call, waiting for the connection included.
func NewPublisher(conn *wamqp.ConnectionWrapper, timeout time.Duration, logger watermill.LoggerAdapter) *Publisher {
	return &Publisher{conn: conn, marshaler: Marshaler{}, timeout: timeout, logger: logger}
}

// Publish sends msgs to the exchange Route gives for each, persistent, and
// returns nil only when the broker has confirmed every one of them.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	return p.PublishContext(ctx, topic, msgs...)
}

// PublishContext is Publish with a caller's deadline.
func (p *Publisher) PublishContext(ctx context.Context, topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if p.Observe == nil {
		return p.publish(ctx, topic, msgs)
	}
	began := time.Now()
	err := p.publish(ctx, topic, msgs)
	exchanges := make([]string, len(msgs))
	for i, msg := range msgs {
		exchanges[i], _ = Route(topic, msg)
	}
	p.Observe(exchanges, time.Since(began), err)
	return err
}

func (p *Publisher) publish(ctx context.Context, topic string, msgs []*message.Message) error {
	ch, err := p.channel(ctx)
	if err != nil {
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, msg := range msgs {
		pub, err := p.marshaler.Marshal(msg)
		if err != nil {
			p.release(ch, nil)
			return fmt.Errorf("publish %s: %w", msg.UUID, err)
		}
		exchange, key := Route(topic, msg)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, pub)
		if err != nil {
			p.release(ch, err)
			return fmt.Errorf("publish to %s with %q: %w", exchange, key, err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			// The confirm may still come; the channel's sequence is unknown.
			p.release(ch, err)
			return fmt.Errorf("waiting for the broker's confirm (limit %s): %w", p.timeout, err)
		}
		if !acked {
			p.release(ch, nil)
			return ErrNacked
		}
	}
	p.release(ch, nil)
	return nil
}

// channel takes an idle confirm channel or opens one, waiting for the
// connection until ctx ends.
func (p *Publisher) channel(ctx context.Context) (*amqp.Channel, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		ch := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !ch.IsClosed() {
			p.mu.Unlock()
			return ch, nil
		}
	}
	p.mu.Unlock()

	select {
	case <-p.conn.Connected():
	case <-ctx.Done():
		return nil, fmt.Errorf("no connection to the broker: %w", ctx.Err())
	}
	conn := p.conn.Connection()
	p.watchBlocked(conn)
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open a channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("put the channel in confirm mode: %w", err)
	}
	return ch, nil
}

// release returns ch to the pool, or closes it after an error.
func (p *Publisher) release(ch *amqp.Channel, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || p.closed || ch.IsClosed() {
		_ = ch.Close()
		return
	}
	p.idle = append(p.idle, ch)
}

// watchBlocked logs RabbitMQ's connection.blocked and unblocked
// notifications for each new connection: while blocked, publishes wait
// (and time out), and the log says why.
func (p *Publisher) watchBlocked(conn *amqp.Connection) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if conn == p.watchedConn {
		return
	}
	p.watchedConn = conn
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for b := range blocked {
			if b.Active {
				p.logger.Error("RabbitMQ blocked publishing on this connection (connection.blocked); publishes wait until it unblocks",
					errors.New(b.Reason), nil)
			} else {
				p.logger.Info("RabbitMQ unblocked publishing on this connection", nil)
			}
		}
	}()
}

// Close closes the idle channels; later calls to Publish fail.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, ch := range p.idle {
		_ = ch.Close()
	}
	p.idle = nil
	return nil
}

var _ message.Publisher = (*Publisher)(nil)
