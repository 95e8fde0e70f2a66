package broker

import (
	"context"
	"errors"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RetirementDelay bounds how long a recycled connection may finish its
// work (settle the deliveries it holds, receive the confirms of its
// publishes) after its replacement took over; what it has not finished
// then goes back to the queue when it closes.
const RetirementDelay = 30 * time.Second

// sourcePoll is how often a ChangeSource is asked whether it changed.
var sourcePoll = 2 * time.Second

// expiryLead is how long before its credentials expire a connection is
// recycled: a tenth of their life, between 1 s and 5 minutes.
func expiryLead(life time.Duration) time.Duration {
	return min(max(life/10, time.Second), 5*time.Minute)
}

// errRecycle asks serve's loop for a recycle; it is never returned.
var errRecycle = errors.New("recycle")

// serve watches the session *s until its connection is lost (returning
// why) or ctx ends (nil). Meanwhile it recycles the connection: every
// RecycleInterval, ahead of the credentials' expiry, and when the source
// changes. A recycle is make-before-break: the new connection is made
// (to the next node when there are several) and set up (its topology
// declared) while the old one goes on; then the new one becomes current
// and the old one retires (see retire). A recycle that fails keeps the
// old connection, says why, and is tried again with backoff.
func (c *Connection) serve(ctx context.Context, s **Session, creds *Credentials, next *int, order *[]Address) error {
	failures := 0
	for {
		began := time.Now()
		err := c.watch(ctx, *s, c.recycleAfter(*creds, began, failures))
		if err != errRecycle {
			return err
		}
		fresh, err := c.credentials(ctx)
		var conn *amqp.Connection
		var addr Address
		if err == nil {
			freshOrder := c.ordered(fresh.Addresses)
			addr = freshOrder[(*next+1)%len(freshOrder)]
			if conn, err = c.dial(addr); err == nil {
				*creds, *order = fresh, freshOrder
				*next++
			}
		}
		if err != nil {
			failures++
			c.setLastError(err)
			c.cfg.Logger.Warn("cannot make the connection that replaces this one; keeping it", "broker", (*s).Address.Display, "retry_in", c.cfg.Backoff.Delay(failures-1).Round(time.Millisecond).String(), "error", err.Error())
			continue
		}
		failures = 0
		c.setLastError(nil)
		old := *s
		*s = newSession(conn, addr)
		c.set(*s)
		c.cfg.Logger.Info("recycled the connection: the new one consumes and publishes, the old one finishes its work", "broker", addr.Display, "was", old.Address.Display)
		go c.retire(old)
	}
}

// recycleAfter is when the connection made at began should be recycled
// next, zero for never: after RecycleInterval, ahead of the credentials'
// expiry, or, after failures recycles that failed, after a backoff.
func (c *Connection) recycleAfter(creds Credentials, began time.Time, failures int) time.Duration {
	var after time.Duration
	if failures > 0 {
		return c.cfg.Backoff.Delay(failures - 1)
	}
	if c.cfg.RecycleInterval > 0 {
		after = c.cfg.RecycleInterval
	}
	if !creds.Expires.IsZero() {
		untilExpiry := creds.Expires.Sub(began)
		ahead := max(untilExpiry-expiryLead(untilExpiry), 0)
		if after == 0 || ahead < after {
			after = max(ahead, time.Millisecond)
		}
	}
	return after
}

// retire closes a replaced session's connection once its users released
// it, or after RetirementDelay: first its users are told (Retiring), so
// that consumers stop taking deliveries on it and publishes go to the new
// session.
func (c *Connection) retire(s *Session) {
	close(s.retiring)
	deadline := time.Now().Add(RetirementDelay)
	for s.users.Load() > 0 && time.Now().Before(deadline) && !s.Conn.IsClosed() {
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.users.Load(); n > 0 {
		c.cfg.Logger.Warn("a recycled connection still had work after the retirement delay; closing it (its unsettled messages go back to the queue)", "broker", s.Address.Display, "holds", n, "delay", RetirementDelay.String())
	}
	_ = s.Conn.Close()
	close(s.done)
}

// watch waits until the connection of s closes (returning why), ctx ends
// (nil), or a recycle is due (errRecycle) after recycleAfter (never when
// zero) or because the source changed; it logs RabbitMQ's
// connection.blocked meanwhile.
func (c *Connection) watch(ctx context.Context, s *Session, recycleAfter time.Duration) error {
	blocked := s.blocked
	var recycle <-chan time.Time
	if recycleAfter > 0 {
		t := time.NewTimer(recycleAfter)
		defer t.Stop()
		recycle = t.C
	}
	var poll <-chan time.Time
	changes, watching := c.cfg.Source.(ChangeSource)
	if watching {
		t := time.NewTicker(sourcePoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-s.closed:
			if !ok || err == nil {
				return errors.New("the connection was closed")
			}
			return err
		case <-recycle:
			return errRecycle
		case <-poll:
			if changes.Changed() {
				c.cfg.Logger.Info("the connection source changed; making a new connection with it", "broker", s.Address.Display)
				return errRecycle
			}
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			c.noteBlocked(b)
		}
	}
}

// noteBlocked records and logs RabbitMQ's connection.blocked.
func (c *Connection) noteBlocked(b amqp.Blocking) {
	c.mu.Lock()
	if c.blocked && !b.Active {
		c.unblocked = time.Now()
	}
	c.blocked = b.Active
	c.mu.Unlock()
	if b.Active {
		c.cfg.Logger.Error("RabbitMQ blocked publishing on this connection (connection.blocked: a memory or disk alarm); publishes wait until it unblocks, and the time blocked does not count against publish_timeout", "reason", b.Reason)
	} else {
		c.cfg.Logger.Info("RabbitMQ unblocked publishing on this connection")
	}
}
