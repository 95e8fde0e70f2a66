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

// ConnectionConfig configures a Connection.
type ConnectionConfig struct {
	// Addresses are the broker's nodes. The connection tries them in a
	// random order drawn once per process (so that replicas spread over
	// the nodes), moving to the next when one does not answer.
	Addresses []Address
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
// take the current Session and watch it end.
type Connection struct {
	cfg   ConnectionConfig
	order []Address

	mu      sync.Mutex
	current *Session
	// changed is closed and replaced whenever current changes.
	changed chan struct{}
	blocked bool
	// unblocked is when RabbitMQ last unblocked the current connection.
	unblocked time.Time
}

// Session is one live AMQP connection. It ends when the connection is
// lost or closed, and is never used again.
type Session struct {
	// Conn is the connection.
	Conn *amqp.Connection
	// Address is the node it is connected to.
	Address Address
	done    chan struct{}
}

// Done is closed when the session's connection is gone.
func (s *Session) Done() <-chan struct{} { return s.done }

// NewConnection returns a Connection; Run connects it.
func NewConnection(cfg ConnectionConfig) *Connection {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second}
	}
	order := append([]Address(nil), cfg.Addresses...)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return &Connection{cfg: cfg, order: order, changed: make(chan struct{})}
}

// Order is the order in which the nodes are tried.
func (c *Connection) Order() []Address { return append([]Address(nil), c.order...) }

// Run connects, and connects again whenever the connection is lost, until
// ctx ends; then it closes the connection. Before the first connection
// succeeds, a permanent refusal (wrong credentials, no access to the
// vhost, a certificate that does not verify, a topology the user may not
// declare) ends Run with that error; every other failure is retried with
// backoff, each attempt logged.
func (c *Connection) Run(ctx context.Context) error {
	connectedOnce := false
	// attempt counts the rounds through every node that all failed;
	// failed, the nodes that failed in this round. Only a round that
	// failed on every node waits before the next: a node that is down
	// costs one refused dial, and the next is tried at once.
	attempt, failed, quickLosses := 0, 0, 0
	for next := 0; ; next++ {
		addr := c.order[next%len(c.order)]
		conn, err := c.dial(addr)
		if err != nil {
			if !connectedOnce && permanent(err) {
				return err
			}
			failed++
			if failed < len(c.order) {
				c.cfg.Logger.Warn("cannot connect to this broker node; trying the next", "broker", addr.Display, "next", c.order[(next+1)%len(c.order)].Display, "error", err.Error())
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
		s := &Session{Conn: conn, Address: addr, done: make(chan struct{})}
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
		c.set(s)
		c.cfg.Logger.Info("connected to the broker", "broker", addr.Display)
		lost := c.watch(ctx, closed, blocked)
		c.set(nil)
		close(s.done)
		if lost == nil {
			_ = conn.Close()
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
		c.cfg.Logger.Warn("lost the connection to the broker; reconnecting", "broker", addr.Display, "retry_in", delay.Round(time.Millisecond).String(), "error", lost.Error())
		if backoff.Sleep(ctx, delay) != nil {
			return nil
		}
		if len(c.order) == 1 {
			next--
		}
	}
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

// watch waits until the connection closes (returning why) or ctx ends
// (returning nil), and logs RabbitMQ's connection.blocked meanwhile.
func (c *Connection) watch(ctx context.Context, closed <-chan *amqp.Error, blocked <-chan amqp.Blocking) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-closed:
			if !ok || err == nil {
				return errors.New("the connection was closed")
			}
			return err
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
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
	}
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
