package broker

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Binding binds the input queue to an upstream exchange with a pattern.
type Binding struct {
	Exchange, RoutingKey string
}

// Topology declares what one pipeline needs on the broker: its output
// exchanges, its dead and park exchanges and dead queue, its input queue
// bound to every upstream binding, and its wait and hold exchanges and
// wait queues. It is declared on every new connection and whenever
// something of it went missing; everything it declares is durable and
// idempotent. Upstream exchanges are never declared (a Pulse client may
// not): they must exist.
type Topology struct {
	// InputQueue, DeadQueue and DeadExchange are full Pulse names. The
	// dead exchange is the input queue's dead-letter exchange.
	InputQueue, DeadQueue, DeadExchange string
	// ParkExchange is the fanout exchange, bound to the dead queue, to
	// which the translator publishes parked copies. It is named under
	// queue/<client>/, which Pulse lets no other client read, so no other
	// client's queue can be bound to it (and refuse the copies).
	ParkExchange string
	// Bindings of the input queue.
	Bindings []Binding
	// OutputExchanges are declared as durable topic exchanges.
	OutputExchanges []string
	// MaxLength and DeadMaxLength cap the queues' messages; DeadMaxBytes
	// the dead queue's bytes (0: no cap).
	MaxLength, DeadMaxLength int
	DeadMaxBytes             int64
	// QueueType is "classic" or "quorum", for every queue of the topology.
	QueueType string
	// DeliveryLimit is, for quorum queues, how many times the input queue
	// delivers a message before it dead-letters it (0: none).
	DeliveryLimit int
	// DeclareUpstream declares the upstream exchanges as durable topic
	// exchanges before binding. Only for a local broker: a Pulse user may
	// not declare them.
	DeclareUpstream bool
	// Wait is the wait topology; every pipeline of the runner has one.
	Wait *WaitTopology
	// OnOlderQueue, when set, is called for each queue that an earlier
	// version declared with other arguments, which RabbitMQ cannot
	// change in place: the queue is used as it is, and what says what it
	// lacks (for example "x-max-length-bytes") and what follows from it.
	OnOlderQueue func(queue, what string)
}

// WaitTopology is a readiness gate's part of the topology: a private
// direct exchange, the hold exchange, with one wait queue per tier bound
// to it by the tier's key and the input queue bound to it by RetryKey. A
// wait queue's messages expire after its TTL and are dead-lettered
// through it with RetryKey, that is back into the input queue. Everything
// stays within the client's own names, so a Pulse user may declare and
// use all of it.
type WaitTopology struct {
	// Exchange is the public direct exchange (exchange/…) through which
	// wait queues declared by earlier versions dead-letter; the input is
	// bound to it by RetryKey, as it is to HoldExchange.
	Exchange, RetryKey string
	// HoldExchange is the direct exchange through which messages enter
	// the wait queues, and come back (RetryKey) into the input queue, as
	// replayed messages do. It is named under queue/<client>/, which Pulse
	// lets no other client read, so no other client's queue can be bound
	// to it (and refuse the copies); Exchange, named exchange/…, may have
	// other clients' queues bound to it. Wait queues declared before it
	// existed stay bound to Exchange by their keys too, harmlessly.
	HoldExchange string
	// Queues are the tiers' queues.
	Queues []WaitQueue
	// MaxLength and MaxBytes cap each wait queue's messages and bytes (0:
	// no byte cap); past either the queue refuses new messages
	// (reject-publish), so that the publisher's confirm is a nack.
	MaxLength int
	MaxBytes  int64
}

// WaitQueue is one tier of a wait topology.
type WaitQueue struct {
	// Name is the queue's full name; Key routes to it from the exchange.
	Name, Key string
	// TTL is how long each message waits in it.
	TTL time.Duration
}

// declare declares the wait topology and binds input to it, on ch (a
// channel of conn; a wait queue of an earlier version, which the broker
// refuses to declare as this one does, closes it, and declare goes on on
// a new one).
func (w *WaitTopology) declare(conn *amqp.Connection, ch *channelOf, queueType, input string, onOlder func(queue, what string)) error {
	for _, ex := range []string{w.Exchange, w.HoldExchange} {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return explain("declare exchange "+ex, err)
		}
	}
	for _, q := range w.Queues {
		args := amqp.Table{
			"x-max-length":              int64(w.MaxLength),
			"x-overflow":                "reject-publish",
			"x-queue-type":              queueType,
			"x-message-ttl":             q.TTL.Milliseconds(),
			"x-dead-letter-exchange":    w.HoldExchange,
			"x-dead-letter-routing-key": w.RetryKey,
		}
		if queueType == "quorum" {
			// A waiter whose TTL ends goes back to the input with the
			// broker's confirm: the wait queue keeps it until the input
			// queue has it, even while the input's leader is moving to
			// another node. RabbitMQ allows this with reject-publish only,
			// which wait queues use.
			args["x-dead-letter-strategy"] = "at-least-once"
		}
		// Earlier versions declared wait queues without a byte cap, and
		// before that dead-lettering through Exchange, whose waiters
		// another client's queue bound there with RetryKey can refuse:
		// with quorum queues (at-least-once dead-lettering) the wait
		// queue then keeps a copy of each.
		throughExchange := maps.Clone(args)
		throughExchange["x-dead-letter-exchange"] = w.Exchange
		viaExchange := "it dead-letters its waiters through " + w.Exchange + ", to which other Pulse clients may bind queues that refuse them"
		shapes := []queueShape{{args: throughExchange, lacks: viaExchange}}
		if w.MaxBytes > 0 {
			shapes = []queueShape{
				{args: maps.Clone(args), lacks: noByteCap + " (wait.max_bytes)"},
				{args: throughExchange, lacks: noByteCap + " (wait.max_bytes), and " + viaExchange},
			}
			args["x-max-length-bytes"] = w.MaxBytes
		}
		if err := declareQueue(conn, ch, q.Name, args, shapes, onOlder); err != nil {
			return err
		}
		if err := ch.QueueBind(q.Name, q.Key, w.HoldExchange, false, nil); err != nil {
			return explain("bind "+q.Name, err)
		}
	}
	// Through HoldExchange waiters come back and replayed messages come
	// in, where no other client's queue can refuse them; through Exchange
	// come the waiters of wait queues declared by an earlier version.
	for _, ex := range []string{w.Exchange, w.HoldExchange} {
		if err := ch.QueueBind(input, w.RetryKey, ex, false, nil); err != nil {
			return explain(fmt.Sprintf("bind %s to %s", input, ex), err)
		}
	}
	return nil
}

// queueArgs returns the arguments of a queue capped at maxLength.
func (t *Topology) queueArgs(maxLength int) amqp.Table {
	args := amqp.Table{
		"x-max-length": int64(maxLength),
		"x-overflow":   "drop-head",
		"x-queue-type": t.QueueType,
	}
	return args
}

// noByteCap says what a queue declared without x-max-length-bytes lacks.
const noByteCap = "it has no x-max-length-bytes: its bytes are not capped"

// queueShape is the arguments with which an earlier version declared a
// queue, and what the queue lacks when it was declared so.
type queueShape struct {
	args  amqp.Table
	lacks string
}

// declareQueue declares the durable queue name with args on ch. When the
// broker refuses (PRECONDITION_FAILED: the queue exists with other
// arguments, which RabbitMQ cannot change in place), it tries each shape
// an earlier version declared it with, in turn, on a new channel (the
// refusal closed the old one), and tells onOlder what the queue lacks.
// When none fits, the first refusal is returned, explained.
func declareQueue(conn *amqp.Connection, ch *channelOf, name string, args amqp.Table, older []queueShape, onOlder func(queue, what string)) error {
	_, err := ch.QueueDeclare(name, true, false, false, false, args)
	var ae *amqp.Error
	if err == nil || !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		if err != nil {
			return explain("declare queue "+name, err)
		}
		return nil
	}
	for _, shape := range older {
		if rerr := ch.reopen(conn); rerr != nil {
			return rerr
		}
		if _, oerr := ch.QueueDeclare(name, true, false, false, false, shape.args); oerr == nil {
			if onOlder != nil {
				onOlder(name, shape.lacks)
			}
			return nil
		}
	}
	if rerr := ch.reopen(conn); rerr != nil {
		return rerr
	}
	return explain("declare queue "+name, err)
}

func declareTopic(ch *amqp.Channel, exchange string) error {
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return explain("declare exchange "+exchange, err)
	}
	return nil
}

// channelOf is a channel of a connection that declare may replace when
// the broker closed it.
type channelOf struct{ *amqp.Channel }

// reopen closes the channel, if the broker has not, and opens another.
func (c *channelOf) reopen(conn *amqp.Connection) error {
	_ = c.Channel.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	c.Channel = ch
	return nil
}

// Declare declares the whole topology, on a channel of conn of its own.
func (t *Topology) Declare(conn *amqp.Connection) error {
	c, err := conn.Channel()
	if err != nil {
		return err
	}
	ch := &channelOf{c}
	defer func() { _ = ch.Close() }()
	for _, ex := range t.OutputExchanges {
		if err := declareTopic(ch.Channel, ex); err != nil {
			return err
		}
	}
	deadArgs := t.queueArgs(t.DeadMaxLength)
	var deadOlder []queueShape
	if t.DeadMaxBytes > 0 {
		// Earlier versions declared the dead queue without a byte cap.
		deadOlder = []queueShape{{args: maps.Clone(deadArgs), lacks: noByteCap + " (queue.dead_max_bytes)"}}
		deadArgs["x-max-length-bytes"] = t.DeadMaxBytes
	}
	if err := declareQueue(conn, ch, t.DeadQueue, deadArgs, deadOlder, t.OnOlderQueue); err != nil {
		return err
	}
	for _, ex := range []string{t.DeadExchange, t.ParkExchange} {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return explain("declare exchange "+ex, err)
		}
		if err := ch.QueueBind(t.DeadQueue, "", ex, false, nil); err != nil {
			return explain(fmt.Sprintf("bind %s to %s", t.DeadQueue, ex), err)
		}
	}
	inputArgs := t.queueArgs(t.MaxLength)
	// Past max length the oldest messages are dead-lettered, with the
	// reason "maxlen" in their x-death header, instead of vanishing.
	inputArgs["x-dead-letter-exchange"] = t.DeadExchange
	if t.QueueType == "quorum" && t.DeliveryLimit > 0 {
		// A message delivered this many times without an ack (each time
		// its consumer died holding it) is dead-lettered too, reason
		// delivery_limit, instead of taking down every consumer in turn.
		// The input overflows by drop-head, so RabbitMQ dead-letters from
		// it at most once: reject-publish, which at-least-once needs,
		// would nack upstream's publishes to every queue of the exchange.
		inputArgs["x-delivery-limit"] = int64(t.DeliveryLimit)
	}
	if _, err := ch.QueueDeclare(t.InputQueue, true, false, false, false, inputArgs); err != nil {
		return explain("declare queue "+t.InputQueue, err)
	}
	if t.Wait != nil {
		if err := t.Wait.declare(conn, ch, t.QueueType, t.InputQueue, t.OnOlderQueue); err != nil {
			return err
		}
	}
	for _, b := range t.Bindings {
		if t.DeclareUpstream {
			if err := declareTopic(ch.Channel, b.Exchange); err != nil {
				return err
			}
		}
		if err := ch.QueueBind(t.InputQueue, b.RoutingKey, b.Exchange, false, nil); err != nil {
			return explain(fmt.Sprintf("bind %s to %s with %q", t.InputQueue, b.Exchange, b.RoutingKey), err)
		}
	}
	return nil
}

// explain adds what to do to the broker errors people meet at start-up.
func explain(what string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused:
			return fmt.Errorf("%s: access refused: the user lacks the Pulse permission for this name (configure/write ^(exchange|queue)/<clientId>/.*, read ^(exchange/.*|queue/<clientId>/.*)): %w", what, err)
		case amqp.PreconditionFailed:
			if m := inequivalentType.FindStringSubmatch(ae.Reason); m != nil {
				return fmt.Errorf("%s: it exists as a %s queue and the config asks for a %s queue (queue.type); RabbitMQ cannot change a queue's type in place. To keep it, set queue.type: %s. To change the type: run with queue.type: %s until the input and wait queues are empty, take what the dead queue holds (pulsetranslator dead list / replay), stop every replica, delete the pipeline's queues (rabbitmqctl delete_queue %q, and its input and wait queues), and start again: %w",
					what, m[2], m[1], m[2], m[2], queueOf(ae.Reason), err)
			}
			if m := inequivalentArg.FindStringSubmatch(ae.Reason); m != nil {
				return fmt.Errorf("%s: it exists with another %s (%s); RabbitMQ cannot change it in place: configure %s as the queue has it, or stop every replica, delete the queue and start again: %w",
					what, m[1], settingOf(m[1]), settingOf(m[1]), err)
			}
			return fmt.Errorf("%s: it exists with other settings (type, durability, length limit or queue type); delete it or configure it as it is: %w", what, err)
		case amqp.NotFound:
			return fmt.Errorf("%s: not found; an upstream exchange must exist before the pipeline binds to it: %w", what, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

var (
	// inequivalentType reads RabbitMQ's refusal to redeclare a queue as
	// another type: "inequivalent arg 'x-queue-type' for queue 'q' in vhost
	// '/': received 'quorum' but current is 'classic'".
	inequivalentType = regexp.MustCompile(`inequivalent arg 'x-queue-type' .*received '(\w+)' but current is '(\w+)'`)
	inequivalentArg  = regexp.MustCompile(`inequivalent arg '([\w-]+)'`)
	queueInReason    = regexp.MustCompile(`for queue '([^']*)'`)
)

func queueOf(reason string) string {
	if m := queueInReason.FindStringSubmatch(reason); m != nil {
		return m[1]
	}
	return "<queue>"
}

// settingOf names the config setting behind a queue argument.
func settingOf(arg string) string {
	switch arg {
	case "x-max-length":
		return "queue.max_length, queue.dead_max_length or wait.max_length"
	case "x-delivery-limit":
		return "queue.delivery_limit"
	case "x-message-ttl":
		return "wait.tiers"
	}
	return "the argument " + arg + ", which this version of pulsetranslator sets"
}
