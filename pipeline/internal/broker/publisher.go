package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNacked is returned when the broker refuses (nacks) a publish: a
// queue at its length limit with reject-publish, or the broker's own
// failure to store it.
var ErrNacked = errors.New("the broker refused the publish (nack)")

// ErrNoConfirm is wrapped by the error of a publish whose confirm did not
// come within its timeout while the connection was not blocked: the
// broker may be overloaded, or a queue the message was routed to may not
// answer (the others have it). That error wraps context.DeadlineExceeded
// too.
var ErrNoConfirm error = noConfirm{}

// noConfirm reads as context.DeadlineExceeded, and is one.
type noConfirm struct{}

func (noConfirm) Error() string { return context.DeadlineExceeded.Error() }

func (noConfirm) Is(target error) bool { return target == context.DeadlineExceeded }

// ChannelError is returned when the channel closed under a publish. Err
// says why: 404 NOT_FOUND when an exchange is missing, 403 ACCESS_REFUSED
// when the user may not publish there, or the lost connection's error.
type ChannelError struct {
	Err *amqp.Error
	// cause is an error that is not an *amqp.Error, kept whole.
	cause error
}

// Error says why the channel closed, in words an operator can act on.
func (e *ChannelError) Error() string {
	switch {
	case e.Err != nil:
		return "the channel closed during the publish: " + e.Err.Error()
	case e.cause != nil:
		return "the channel closed during the publish: " + e.cause.Error()
	}
	return "the channel closed during the publish"
}

// Unwrap is the closure's error: errors.Is and errors.As see through it.
func (e *ChannelError) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	return e.cause
}

// Code is the AMQP reply code of the closure, or 0.
func (e *ChannelError) Code() int {
	if e.Err == nil {
		return 0
	}
	return e.Err.Code
}

// ByBroker reports whether the broker itself closed the channel (or the
// connection), rather than the connection being lost under the publish:
// amqp091-go reports a broken TCP connection as 501 FRAME_ERROR too, with
// Server false.
func (e *ChannelError) ByBroker() bool {
	return e.Err != nil && e.Err.Server
}

// Refused reports whether the broker closed the channel because it will
// not take this publish as it is: access refused, a failed precondition,
// a command not allowed, or a frame or syntax error in what was sent.
// Publishing it again cannot help. A lost connection is never a refusal.
func (e *ChannelError) Refused() bool {
	if !e.ByBroker() {
		return false
	}
	switch e.Err.Code {
	case amqp.AccessRefused, amqp.PreconditionFailed, amqp.FrameError, amqp.SyntaxError, amqp.CommandInvalid, amqp.NotAllowed:
		return true
	}
	return false
}

// Publisher publishes on confirm channels shared by all its callers: a
// Publish sends its messages and waits for its own confirms while other
// callers' messages and confirms are in flight on the same channels, so
// confirms are pipelined and the broker coalesces them. It is safe for
// concurrent use.
type Publisher struct {
	conn *Connection
	size int
	next atomic.Uint32

	// mu guards session and slots; it is never held across a round trip
	// to the broker.
	mu      sync.Mutex
	session *Session
	slots   []slot
}

// slot is one of a session's confirm channels: open, or being opened.
type slot struct {
	cc      *confirmChannel
	opening *opening
}

// opening is a confirm channel being opened, by a goroutine of its own;
// done is closed once cc or err is set.
type opening struct {
	done chan struct{}
	cc   *confirmChannel
	err  error
}

// confirmChannel is one channel in confirm mode and why it closed.
type confirmChannel struct {
	ch     *amqp.Channel
	closed chan struct{}
	err    *amqp.Error // set before closed is closed
}

// NewPublisher returns a Publisher with channels confirm channels on
// each session of conn.
func NewPublisher(conn *Connection, channels int) *Publisher {
	return &Publisher{conn: conn, size: max(channels, 1)}
}

// Publish sends outs, persistent, and returns nil once the broker has
// confirmed every one of them. It waits for a connection for at most
// timeout, and for the confirms until timeout passes with no confirm
// and the connection not blocked: RabbitMQ blocks a connection that
// publishes during a memory or disk alarm (connection.blocked), and
// confirms what it was sent once the alarm clears, so the time blocked,
// and a timeout after it, do not count. Sending again would only make
// duplicates, and an alarm is no reason to park a message. It returns at
// once when ctx ends. A failure is ErrNacked, a *ChannelError, an error
// wrapping ErrNoConfirm (no confirm in time) or the context's error; some
// of outs may have been published then.
func (p *Publisher) Publish(ctx context.Context, timeout time.Duration, outs ...Outgoing) error {
	if len(outs) == 0 {
		return nil
	}
	sess, cc, err := p.channel(ctx, timeout)
	if err != nil {
		return err
	}
	// A recycled session stays open until its publishes are confirmed.
	sess.Hold()
	defer sess.Release()
	now := time.Now().UTC()
	var one [1]*amqp.DeferredConfirmation
	confirms := one[:0]
	if len(outs) > 1 {
		confirms = make([]*amqp.DeferredConfirmation, 0, len(outs))
	}
	for i := range outs {
		dc, err := cc.ch.PublishWithDeferredConfirm(outs[i].Exchange, outs[i].RoutingKey, false, false, outs[i].publishing(now))
		if err != nil {
			return cc.failure(fmt.Errorf("publish to %s: %w", outs[i].Exchange, err))
		}
		confirms = append(confirms, dc)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, dc := range confirms {
		if err := p.confirmed(ctx, cc, dc, timer, timeout); err != nil {
			return err
		}
	}
	return nil
}

// confirmed waits for dc's confirm until ctx ends or timer fires while
// the connection has not been blocked for the last timeout; then timer
// starts again.
func (p *Publisher) confirmed(ctx context.Context, cc *confirmChannel, dc *amqp.DeferredConfirmation, timer *time.Timer, timeout time.Duration) error {
	for {
		select {
		case <-dc.Done():
			if !dc.Acked() {
				return cc.failure(ErrNacked)
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for the broker's confirm: %w", ctx.Err())
		case <-timer.C:
			if !p.conn.BlockedWithin(timeout) {
				return fmt.Errorf("no confirm within the publish timeout of %s (%w): the broker may be overloaded, "+
					"or a queue the message is routed to may not answer (%s)", timeout, ErrNoConfirm, UnresponsiveQueueHint)
			}
			timer.Reset(timeout)
		}
	}
}

// failure says why a publish failed: the channel's closure when it
// closed under it, else err.
func (cc *confirmChannel) failure(err error) error {
	if !cc.ch.IsClosed() {
		return err
	}
	// amqp091-go marks the channel closed, then sends its error, then
	// nacks what was in flight: the error is on its way. cc.err is read
	// only once closed is closed, which happens after it is set.
	select {
	case <-cc.closed:
		return &ChannelError{Err: cc.err}
	case <-time.After(time.Second):
		return &ChannelError{}
	}
}

// channel returns one of the current session's confirm channels, opening
// it if it is new or closed. Without a session it waits for one for at
// most timeout; with one, as on every publish but the first after a
// reconnect, it makes no context and no timer. A channel is opened by a
// goroutine of its own, with no lock held, and its callers wait for it
// for at most timeout, or until ctx ends: a broker that does not answer
// the opening holds up no publish beyond its timeout, nor any that goes
// on another, open, channel.
func (p *Publisher) channel(ctx context.Context, timeout time.Duration) (*Session, *confirmChannel, error) {
	s := p.conn.Current()
	if s == nil {
		wait, cancel := context.WithTimeout(ctx, timeout)
		var err error
		s, err = p.conn.Session(wait)
		cancel()
		if err != nil {
			return nil, nil, err
		}
	}
	i := int(p.next.Add(1)) % p.size
	p.mu.Lock()
	if p.session != s {
		p.session, p.slots = s, make([]slot, p.size)
	}
	sl := &p.slots[i]
	if cc := sl.cc; cc != nil && !cc.ch.IsClosed() {
		p.mu.Unlock()
		return s, cc, nil
	}
	op := sl.opening
	if op == nil {
		op = &opening{done: make(chan struct{})}
		sl.opening = op
		go p.open(s, sl, op)
	}
	p.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-op.done:
		return s, op.cc, op.err
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for a confirm channel: %w", ctx.Err())
	case <-timer.C:
		return nil, nil, fmt.Errorf("the broker did not open a confirm channel within %s (%w)", timeout, ErrNoConfirm)
	}
}

// open opens the confirm channel of slot sl on session s, and says so
// through op.
func (p *Publisher) open(s *Session, sl *slot, op *opening) {
	cc, err := openConfirmChannel(s.Conn)
	p.mu.Lock()
	if err == nil {
		sl.cc = cc
	}
	sl.opening = nil
	p.mu.Unlock()
	op.cc, op.err = cc, err
	close(op.done)
}

// openConfirmChannel opens a channel of conn in confirm mode and follows
// its closure.
func openConfirmChannel(conn *amqp.Connection) (*confirmChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, channelError(err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, channelError(err)
	}
	cc := &confirmChannel{ch: ch, closed: make(chan struct{})}
	notify := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		cc.err = <-notify
		close(cc.closed)
	}()
	return cc, nil
}

// channelError is err, from opening a channel, as a *ChannelError: its
// *amqp.Error when it holds one, and its chain otherwise (amqp091-go
// gives plain errors too, such as ErrClosed's kin).
func channelError(err error) *ChannelError {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return &ChannelError{Err: ae}
	}
	return &ChannelError{cause: err}
}
