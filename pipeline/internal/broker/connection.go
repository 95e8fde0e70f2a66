package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/backoff"
)

// Address is one broker node to connect to.
type Address struct {
	// URL is the AMQP URL, password included.
	URL string
	// Display names it in logs and errors: the URL without its password.
	Display string
}

// Credentials are the broker's nodes, with the user and password in
// their URLs, as a Source gives them.
type Credentials struct {
	Addresses []Address
	// Expires is when the credentials stop working; zero when they do
	// not expire. The connection is made again before then.
	Expires time.Time
}

// Source gives the credentials of every new connection: read from a file
// that a rotation rewrites, or from a program that claims them. Get is
// called before each round of dials and each recycle.
type Source interface {
	Get(ctx context.Context) (Credentials, error)
}

// ChangeSource is a Source that can tell, cheaply, that it now holds
// other credentials than the last Get gave (a rewritten file): the
// connection is then made again with them.
type ChangeSource interface {
	Source
	Changed() bool
}

// ConnectionConfig configures a Connection.
type ConnectionConfig struct {
	// Addresses are the broker's nodes, when they do not change. The
	// connection tries them in a random order drawn once per process (so
	// that replicas spread over the nodes), moving to the next when one
	// does not answer.
	Addresses []Address
	// Source, when set, replaces Addresses: the credentials are read
	// from it for every connection. A login refused after a rotation
	// reads it again and retries at once when it gives other
	// credentials.
	Source Source
	// RecycleInterval, when positive, replaces the connection with a new
	// one this often (to the next node when there are several), make
	// before break: see recycle.
	RecycleInterval time.Duration
	// AMQP is the amqp091-go config of every dial: TLS, heartbeat,
	// connection name.
	AMQP amqp.Config
	// Setup runs on every new connection before it is handed out, for
	// example to declare the topology. An error closes the connection.
	Setup func(*amqp.Connection) error
	// Backoff spaces out the attempts. Default: 500ms doubling to 30s.
	Backoff backoff.Policy
	// Logger logs every attempt, loss and block. Optional: nil logs nothing.
	Logger *slog.Logger
}

// Connection keeps one AMQP connection to the broker: it waits for the
// broker at start-up, and comes back after losing it, with backoff. Users
// take the current Session and watch it end, or retire.
type Connection struct {
	cfg ConnectionConfig
	// perm is the order, drawn once, in which the nodes are tried: a
	// permutation of the indices of the credentials' addresses.
	perm []int

	mu      sync.Mutex
	current *Session
	// changed is closed and replaced whenever current changes.
	changed chan struct{}
	blocked bool
	// unblocked is when RabbitMQ last unblocked the current connection.
	unblocked time.Time
	// lastErr is why the last connection attempt failed, "" once
	// connected.
	lastErr string
}

// Session is one live AMQP connection. It ends when the connection is
// lost or closed, and is never used again. A session being replaced by
// a recycle retires first: its users stop taking new work on it, finish
// what they hold, and release it.
type Session struct {
	// Conn is the connection.
	Conn *amqp.Connection
	// Address is the node it is connected to.
	Address  Address
	done     chan struct{}
	retiring chan struct{}
	// users counts the holds on the session (see Hold).
	users atomic.Int64
	// closed and blocked are the connection's notifications, registered
	// once.
	closed  chan *amqp.Error
	blocked chan amqp.Blocking
}

// Done is closed when the session's connection has closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Retiring is closed when a new session replaces this one: its users
// take no new work on it, finish what they hold, and release it; it then
// closes.
func (s *Session) Retiring() <-chan struct{} { return s.retiring }

// Hold marks work in progress on the session (deliveries not yet
// settled, a publish waiting for its confirms), which a retiring session
// waits for, up to RetirementDelay, before it closes. Each Hold is
// matched by one Release when the work is done.
func (s *Session) Hold() { s.users.Add(1) }

// Release ends the work a Hold marked.
func (s *Session) Release() { s.users.Add(-1) }

func newSession(conn *amqp.Connection, addr Address) *Session {
	s := &Session{Conn: conn, Address: addr, done: make(chan struct{}), retiring: make(chan struct{})}
	s.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.blocked = conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	return s
}

// NewConnection returns a Connection of cfg; Run connects it.
func NewConnection(cfg ConnectionConfig) *Connection {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second}
	}
	n := max(len(cfg.Addresses), 1)
	return &Connection{cfg: cfg, perm: rand.Perm(n), changed: make(chan struct{})}
}

// Order is the order in which the nodes of cfg.Addresses are tried.
func (c *Connection) Order() []Address { return c.ordered(c.cfg.Addresses) }

// ordered is addrs in the connection's order; a list of another length
// than the first is shuffled anew.
func (c *Connection) ordered(addrs []Address) []Address {
	if len(addrs) != len(c.perm) {
		c.perm = rand.Perm(len(addrs))
	}
	out := make([]Address, len(addrs))
	for i, j := range c.perm {
		out[i] = addrs[j]
	}
	return out
}

// LastError says why the last attempt to connect failed (the password
// hidden), or "" while connected.
func (c *Connection) LastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *Connection) setLastError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.lastErr = ""
	} else {
		c.lastErr = err.Error()
	}
}

// credentials reads the source, or gives the static addresses.
func (c *Connection) credentials(ctx context.Context) (Credentials, error) {
	if c.cfg.Source == nil {
		return Credentials{Addresses: c.cfg.Addresses}, nil
	}
	creds, err := c.cfg.Source.Get(ctx)
	if err == nil && len(creds.Addresses) == 0 {
		err = errors.New("the connection source gave no broker address")
	}
	return creds, err
}

// Run connects, and connects again whenever the connection is lost, until
// ctx ends; then it closes the connection. Before the first connection
// succeeds, a permanent refusal (wrong credentials, no access to the
// vhost, a certificate that does not verify, a topology the user may not
// declare) ends Run with that error, unless the source then gives other
// credentials; every other failure is retried with backoff, each attempt
// logged. While connected, the connection is recycled (see recycle) every
// RecycleInterval, ahead of its credentials' expiry, and when a
// ChangeSource changes.
func (c *Connection) Run(ctx context.Context) error {
	connectedOnce := false
	// attempt counts the rounds through every node that all failed;
	// failed, the nodes that failed in this round. Only a round that
	// failed on every node waits before the next: a node that is down
	// costs one refused dial, and the next is tried at once.
	attempt, failed, quickLosses := 0, 0, 0
	var creds Credentials
	var order []Address
	// fresh is set when creds were read for the dial to come.
	fresh := false
	for next := 0; ; next++ {
		if failed == 0 && !fresh {
			// A new round: read the credentials again.
			var err error
			if creds, err = c.credentials(ctx); err != nil {
				c.setLastError(err)
				delay := c.cfg.Backoff.Delay(attempt)
				c.cfg.Logger.Warn("cannot read the connection string; trying again", "attempt", attempt+1, "retry_in", delay.Round(time.Millisecond).String(), "error", err.Error())
				attempt++
				if backoff.Sleep(ctx, delay) != nil {
					return nil
				}
				next--
				continue
			}
			order = c.ordered(creds.Addresses)
		}
		fresh = false
		addr := order[next%len(order)]
		conn, err := c.dial(addr)
		if err != nil {
			c.setLastError(err)
			if permanent(err) {
				if now, changed := c.sourceChanged(ctx, creds); changed {
					c.cfg.Logger.Warn("the broker refused the login; the connection source now gives other credentials: trying them at once", "broker", addr.Display, "error", err.Error())
					creds, order, fresh = now, c.ordered(now.Addresses), true
					failed, next = 0, next-1
					continue
				}
				if !connectedOnce {
					return err
				}
			}
			failed++
			if failed < len(order) {
				c.cfg.Logger.Warn("cannot connect to this broker node; trying the next", "broker", addr.Display, "next", order[(next+1)%len(order)].Display, "error", err.Error())
				continue
			}
			failed = 0
			delay := c.cfg.Backoff.Delay(attempt)
			c.cfg.Logger.Warn("cannot connect to the broker; trying again", "broker", addr.Display, "attempt", attempt+1, "retry_in", delay.Round(time.Millisecond).String(), "error", err.Error())
			attempt++
			if backoff.Sleep(ctx, delay) != nil {
				return nil
			}
			continue
		}
		attempt, failed = 0, 0
		connectedOnce = true
		since := time.Now()
		s := newSession(conn, addr)
		c.setLastError(nil)
		c.set(s)
		c.cfg.Logger.Info("connected to the broker", "broker", addr.Display)
		lost := c.serve(ctx, &s, &creds, &next, &order)
		c.set(nil)
		close(s.done)
		if lost == nil {
			_ = s.Conn.Close()
			return nil
		}
		// Reconnect at once after a connection that lasted; one lost soon
		// after it was made (a flapping broker) waits, longer each time.
		// With several nodes, the next is tried first: the node just lost
		// may be hung (a stopped process, a partition), and a dial to it
		// costs the whole DialTimeout; it is tried again only after the
		// others.
		var delay time.Duration
		if time.Since(since) < time.Minute {
			delay = c.cfg.Backoff.Delay(quickLosses)
			quickLosses++
		} else {
			quickLosses = 0
		}
		c.cfg.Logger.Warn("lost the connection to the broker; reconnecting", "broker", s.Address.Display, "retry_in", delay.Round(time.Millisecond).String(), "error", lost.Error())
		if backoff.Sleep(ctx, delay) != nil {
			return nil
		}
		if len(order) == 1 {
			next--
		}
	}
}

// sourceChanged reads the source again after a login the broker refused,
// and reports whether it now gives other credentials than creds.
func (c *Connection) sourceChanged(ctx context.Context, creds Credentials) (Credentials, bool) {
	if c.cfg.Source == nil {
		return creds, false
	}
	now, err := c.credentials(ctx)
	return now, err == nil && !sameAddresses(now.Addresses, creds.Addresses)
}

func sameAddresses(a, b []Address) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].URL != b[i].URL {
			return false
		}
	}
	return true
}

// dial connects to addr and runs Setup on the connection.
func (c *Connection) dial(addr Address) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(addr.URL, c.cfg.AMQP)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr.Display, explainDial(err))
	}
	if c.cfg.Setup != nil {
		if err := c.cfg.Setup(conn); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

func (c *Connection) set(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = s
	c.blocked, c.unblocked = false, time.Time{}
	close(c.changed)
	c.changed = make(chan struct{})
}

// Current returns the live session, or nil while disconnected.
func (c *Connection) Current() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Blocked reports whether RabbitMQ has blocked publishing on the
// current connection.
func (c *Connection) Blocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked
}

// BlockedWithin reports whether RabbitMQ blocks publishing on the current
// connection, or unblocked it less than d ago: whether a confirm awaited
// for d may be late because of the block, not of the broker's work.
func (c *Connection) BlockedWithin(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked || !c.unblocked.IsZero() && time.Since(c.unblocked) < d
}

// Session waits for a live session until ctx ends.
func (c *Connection) Session(ctx context.Context) (*Session, error) {
	for {
		c.mu.Lock()
		s, changed := c.current, c.changed
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("no connection to the broker: %w", ctx.Err())
		}
	}
}

// permanent reports a refusal that trying again will not change: the
// broker refused the credentials or the vhost, a certificate does not
// verify, or the user may not declare the topology.
func permanent(err error) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.PreconditionFailed, amqp.NotFound, amqp.NotAllowed:
			return true
		}
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	var notTLS tls.RecordHeaderError
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &host) || errors.As(err, &verify) || errors.As(err, &notTLS)
}

// explainDial adds what to do to a dial error people meet.
func explainDial(err error) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	var notTLS tls.RecordHeaderError
	var ae *amqp.Error
	switch {
	case errors.As(err, &host):
		return fmt.Errorf("the broker's TLS certificate is not valid for this host name; connect by a name the certificate holds: %w", err)
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("the broker's TLS certificate does not verify; set tls.ca_file to the authority that signed it: %w", err)
	case errors.As(err, &notTLS):
		return fmt.Errorf("the broker's port does not speak TLS; use amqp:// for a plain port, or the broker's TLS port (5671) with amqps://: %w", err)
	case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
		return fmt.Errorf("the broker refused the login or the vhost; check the user, the password (URL-encode '/' and '@') and the vhost: %w", err)
	}
	return err
}

// UnresponsiveQueueHint tells an operator how to find and free a queue
// whose process does not answer; errors and logs about one end with it.
const UnresponsiveQueueHint = "rabbitmqctl list_unresponsive_queues names such queues, and restarting the broker frees them"

// QueueMessages returns how many messages a queue holds, by a passive
// declare on a channel of its own, on the current session. It returns
// when ctx ends, answered or not: a queue whose process does not answer
// (RabbitMQ can leave one so) must not hold its caller. The declare then
// finishes in the background, when the broker answers or the connection
// closes.
func (c *Connection) QueueMessages(ctx context.Context, queue string) (int, error) {
	s, err := c.Session(ctx)
	if err != nil {
		return 0, err
	}
	ch, err := s.Conn.Channel()
	if err != nil {
		return 0, err
	}
	q, err := Answer(ctx, func() (amqp.Queue, error) {
		defer ch.Close()
		return ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	})
	if errors.Is(err, ErrNoAnswer) {
		return 0, fmt.Errorf("the queue %s did not answer a count (%w); %s", queue, context.Cause(ctx), UnresponsiveQueueHint)
	}
	return q.Messages, err
}
