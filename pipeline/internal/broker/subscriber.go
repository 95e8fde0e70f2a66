package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/backoff"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Queue is the queue consumed.
	Queue string
	// Prefetch is each channel's prefetch: how many deliveries it keeps in
	// flight at once.
	Prefetch int
	// Channels is how many channels consume the queue.
	Channels int
	// Declare declares the topology again, on channels of its own, when
	// the queue went missing (deleted by an administrator) or the broker
	// cancelled the consumer. Optional.
	Declare func(*amqp.Connection) error
	// Backoff spaces out attempts to consume again. Default 100ms to 10s.
	Backoff backoff.Policy
	// Logger logs losses and cancellations. Optional: nil logs nothing.
	Logger *slog.Logger
}

// Subscriber consumes one queue for Watermill's router without waiting
// for each ack: it hands every delivery over as it arrives, up to the
// prefetch of each channel, and the Settle middleware acks (or nacks)
// each one when its handler is done, in whatever order that happens.
// Acks that settle together share one multiple ack (see settler). The
// router runs each message in a goroutine of its own, so no message waits
// for another.
//
// Each message's context carries its Delivery and ends when the channel
// it came on closes: the broker then returns it to the queue, and the
// work on it can stop. Losing the connection is survived: the subscriber
// consumes again on the next session. A channel the broker closes alone,
// or whose consumer it cancels (the queue was deleted), is replaced alone
// on the same session, the queue declared again when it went missing.
type Subscriber struct {
	conn *Connection
	cfg  SubscriberConfig

	out      chan *message.Message
	closing  chan struct{}
	stopped  chan struct{}
	once     sync.Once
	started  atomic.Bool
	inflight sync.WaitGroup
	// consuming counts the channels consuming now.
	consuming atomic.Int32
	ids       atomic.Uint64
}

// NewSubscriber returns a Subscriber of cfg.Queue on conn.
func NewSubscriber(conn *Connection, cfg SubscriberConfig) *Subscriber {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second}
	}
	return &Subscriber{
		conn:    conn,
		cfg:     cfg,
		out:     make(chan *message.Message),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// Subscribe implements message.Subscriber. topic must be the configured
// queue; a Subscriber serves one Subscribe. When ctx ends, the subscriber
// closes as Close does, and the channel closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic != s.cfg.Queue {
		return nil, fmt.Errorf("this subscriber consumes %s, not %s", s.cfg.Queue, topic)
	}
	if !s.started.CompareAndSwap(false, true) {
		return nil, errors.New("subscribed twice, or after Close")
	}
	go s.run()
	go func() {
		select {
		case <-ctx.Done():
			s.once.Do(func() { close(s.closing) })
		case <-s.stopped:
		}
	}()
	return s.out, nil
}

// Consuming reports whether every channel consumes.
func (s *Subscriber) Consuming() bool {
	return int(s.consuming.Load()) >= max(s.cfg.Channels, 1)
}

// Close stops consuming, returns the deliveries not yet handed over to
// the queue, and waits until every message handed over is settled.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	if s.started.CompareAndSwap(false, true) {
		// Never subscribed, and now it cannot be: nothing runs to close
		// what run would.
		close(s.out)
		close(s.stopped)
	}
	<-s.stopped
	s.inflight.Wait()
	return nil
}

// run consumes on every session until Close.
func (s *Subscriber) run() {
	defer close(s.stopped)
	defer close(s.out)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-s.closing
		cancel()
	}()
	failures := 0
	redeclare := false
	for {
		sess, err := s.conn.Session(ctx)
		if err != nil {
			return
		}
		began := time.Now()
		consumed := make(chan error, 1)
		go func() { consumed <- s.consume(sess, redeclare) }()
		select {
		case err = <-consumed:
		case <-sess.Retiring():
			// A new session replaces this one: its consumers stop and
			// finish their messages on their own (see serve), and the new
			// one is consumed at once.
			redeclare = false
			continue
		}
		if s.isClosing() {
			return
		}
		if err == nil { // only Close ends consume without an error
			err = errors.New("the consumers ended")
		}
		if time.Since(began) > s.cfg.Backoff.Max {
			failures = 0 // it consumed: this loss is a first one
		}
		redeclare = true
		delay := s.cfg.Backoff.Delay(failures)
		failures++
		select {
		case <-sess.Done():
		default:
			s.cfg.Logger.Warn("cannot consume the input queue; trying again", "queue", s.cfg.Queue, "retry_in", delay.String(), "error", err.Error())
		}
		if backoff.Sleep(ctx, delay) != nil {
			return
		}
	}
}

// consume opens the channels of one session and forwards their
// deliveries until the subscriber closes (nil) or the connection closes or
// a channel cannot consume at first (an error). Each channel keeps itself
// consuming meanwhile (keepConsuming): one the broker closes alone, or
// whose consumer it cancels, is replaced alone, while the others go on.
func (s *Subscriber) consume(sess *Session, redeclare bool) error {
	if redeclare && s.cfg.Declare != nil {
		if err := s.cfg.Declare(sess.Conn); err != nil {
			return err
		}
	}
	var consumers []*consumer
	for i := range max(s.cfg.Channels, 1) {
		c, err := s.open(sess, i)
		if err != nil {
			for _, c := range consumers {
				c.close()
			}
			return err
		}
		consumers = append(consumers, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(consumers))
	for i, c := range consumers {
		wg.Go(func() { errs <- s.keepConsuming(sess, i, c) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// consumer is one channel consuming the queue.
type consumer struct {
	ch         *amqp.Channel
	tag        string
	deliveries <-chan amqp.Delivery
	settler    *settler
}

// open opens the channel of consumer slot i and consumes on it.
func (s *Subscriber) open(sess *Session, slot int) (*consumer, error) {
	ch, err := sess.Conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	tag := "pulsetranslator-" + strconv.Itoa(slot) + "-" + strconv.FormatUint(s.ids.Add(1), 10)
	deliveries, err := ch.Consume(s.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return &consumer{ch, tag, deliveries, newSettler(ch, ackHold)}, nil
}

// close sends the acks c holds and closes its channel (unless the broker
// closed it).
func (c *consumer) close() {
	c.settler.stop()
	_ = c.ch.Close()
}

// keepConsuming forwards the deliveries of consumer slot slot, first on
// c, and replaces c when it ends while the connection stays open:
//   - the broker cancelled the consumer (the queue was deleted): it
//     declares the topology again and consumes, at once the first time;
//   - the broker closed the channel alone (for an ack it did not expect,
//     or consumer_timeout): it opens another channel in its place.
//
// Attempts that fail back off, and declare the topology again first. It
// returns nil when the subscriber closes, and the connection's error when
// the connection closes.
func (s *Subscriber) keepConsuming(sess *Session, slot int, c *consumer) error {
	failures := 0
	for {
		began := time.Now()
		err := s.serve(sess, c)
		if s.isClosing() || isRetiring(sess) {
			return nil
		}
		if sessionEnded(sess) {
			return errors.Join(errConnectionClosed, err)
		}
		if time.Since(began) > s.cfg.Backoff.Max {
			failures = 0
		}
		redeclare := err == nil
		var delay time.Duration
		if redeclare {
			// At once the first time; backing off when it keeps happening.
			if failures > 0 {
				delay = s.cfg.Backoff.Delay(failures - 1)
			}
			failures++
			s.cfg.Logger.Warn("the broker stopped a consumer of the input queue (was it deleted?); declaring it again", "queue", s.cfg.Queue, "retry_in", delay.String())
		} else {
			delay = s.cfg.Backoff.Delay(failures)
			failures++
			s.cfg.Logger.Warn("a channel consuming the input queue closed; opening another in its place", "queue", s.cfg.Queue, "retry_in", delay.String(), "error", err.Error())
		}
		for {
			select {
			case <-s.closing:
				return nil
			case <-sess.Done():
				return errConnectionClosed
			case <-time.After(delay):
			}
			if c, err = s.reopen(sess, slot, redeclare); err == nil {
				break
			}
			if sessionEnded(sess) {
				return err
			}
			redeclare = true
			delay = s.cfg.Backoff.Delay(failures)
			failures++
			s.cfg.Logger.Warn("cannot consume the input queue; trying again", "queue", s.cfg.Queue, "retry_in", delay.String(), "error", err.Error())
		}
	}
}

// reopen opens the channel of consumer slot slot again, declaring the
// topology first when redeclare is set.
func (s *Subscriber) reopen(sess *Session, slot int, redeclare bool) (*consumer, error) {
	if redeclare && s.cfg.Declare != nil {
		if err := s.cfg.Declare(sess.Conn); err != nil {
			return nil, err
		}
	}
	return s.open(sess, slot)
}

// serve forwards the deliveries of c until they end, cancelling its
// consumer when the subscriber closes or the session retires. The channel
// stays open until its messages are settled, then closes (unless it
// closed already); the session is held until then.
func (s *Subscriber) serve(sess *Session, c *consumer) error {
	var inflight sync.WaitGroup
	sess.Hold()
	s.consuming.Add(1)
	done := make(chan struct{})
	go func() {
		select {
		case <-s.closing:
			// Stop the deliveries; forward returns what is still buffered.
			_ = c.ch.Cancel(c.tag, false)
		case <-sess.Retiring():
			_ = c.ch.Cancel(c.tag, false)
		case <-done:
		}
	}()
	err := s.forward(c.ch, c.settler, c.deliveries, &inflight)
	close(done)
	s.consuming.Add(-1)
	go func() {
		inflight.Wait()
		c.close()
		sess.Release()
	}()
	return err
}

// isRetiring reports whether a new session replaces sess.
func isRetiring(sess *Session) bool {
	select {
	case <-sess.Retiring():
		return true
	default:
		return false
	}
}

// isClosing reports whether Close was called (or the Subscribe context
// ended).
func (s *Subscriber) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// errConnectionClosed ends a consumer slot whose connection closed.
var errConnectionClosed = errors.New("the connection closed")

// sessionEnded reports whether the connection of sess closed.
func sessionEnded(sess *Session) bool {
	select {
	case <-sess.Done():
		return true
	default:
		return sess.Conn.IsClosed()
	}
}

// forward hands each delivery of one channel over to the router, until
// the deliveries end; it returns the channel's closure, or nil when the
// consumer was cancelled with the channel open.
// inflight counts its messages not yet settled.
func (s *Subscriber) forward(ch *amqp.Channel, settler *settler, deliveries <-chan amqp.Delivery, inflight *sync.WaitGroup) error {
	ctx, cancel := context.WithCancel(context.Background())
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	var closeErr atomic.Pointer[amqp.Error]
	go func() {
		if err := <-closed; err != nil {
			closeErr.Store(err)
		}
		cancel()
	}()
	for d := range deliveries {
		if s.isClosing() {
			settler.nack(d.DeliveryTag, true, func() {})
			continue
		}
		msg := message.NewMessage(strconv.FormatUint(s.ids.Add(1), 10), d.Body)
		delivery := deliveryOf(&d)
		tag := d.DeliveryTag
		s.inflight.Add(1)
		inflight.Add(1)
		sent := func() {
			inflight.Done()
			s.inflight.Done()
		}
		delivery.ack = func() { settler.ack(tag, sent) }
		delivery.nack = func() { settler.nack(tag, !delivery.reject.Load(), sent) }
		msg.SetContext(WithDelivery(ctx, delivery))
		select {
		case s.out <- msg:
		case <-s.closing:
			delivery.settle(false)
		}
	}
	if ch.IsClosed() {
		<-ctx.Done()
		if err := closeErr.Load(); err != nil {
			return err
		}
		return errors.New("the channel closed")
	}
	return nil
}

// Settle is the router middleware that answers the broker for each
// delivery of a Subscriber: an ack once the message's handler returned
// nil, a nack otherwise (the message goes back to the queue, unless the
// handler called Delivery.Reject), as soon as its handler is done; the
// channel's settler lets acks that settle together share a frame. It
// must be the handler's outermost middleware. (It replaces a goroutine
// per message waiting for Watermill's Ack.)
func Settle(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (outs []*message.Message, err error) {
		d, ok := DeliveryFrom(msg.Context())
		if !ok {
			return next(msg)
		}
		// A panic that passes through nacks it.
		defer d.settle(false)
		outs, err = next(msg)
		d.settle(err == nil)
		return outs, err
	}
}

var _ message.Subscriber = (*Subscriber)(nil)
