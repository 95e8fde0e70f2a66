package broker

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Binding binds the input queue to an upstream exchange with a pattern.
type Binding struct {
	Exchange, RoutingKey string
}

// Topology declares what one pipeline needs on the broker: its output
// exchanges, its dead exchange and dead queue, and its input queue bound
// to every upstream binding. It implements watermill-amqp's
// TopologyBuilder, so it runs again after every reconnect; everything it
// declares is durable and idempotent. Upstream exchanges are never declared
// (a Pulse client may not): they must exist.
type Topology struct {
	// InputQueue, DeadQueue and DeadExchange are full Pulse names.
	InputQueue, DeadQueue, DeadExchange string
	// Bindings of the input queue.
	Bindings []Binding
	// OutputExchanges are declared as durable topic exchanges.
	OutputExchanges []string
	// MaxLength and DeadMaxLength cap the queues.
	MaxLength, DeadMaxLength int
	// QueueType is "classic" or "quorum".
	QueueType string
	// DeclareUpstream declares the upstream exchanges as durable topic
	// exchanges before binding. Only for a local broker: a Pulse user may
	// not declare them.
	DeclareUpstream bool
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

// BuildTopology implements wamqp.TopologyBuilder; queueName and
// exchangeName from watermill-amqp are ignored in favour of the fields.
func (t *Topology) BuildTopology(ch *amqp.Channel, _ string, _ string, _ wamqp.Config, logger watermill.LoggerAdapter) error {
	return t.Declare(ch)
}

// ExchangeDeclare implements wamqp.TopologyBuilder: a durable topic exchange.
func (t *Topology) ExchangeDeclare(ch *amqp.Channel, exchange string, _ wamqp.Config) error {
	return declareTopic(ch, exchange)
}

func declareTopic(ch *amqp.Channel, exchange string) error {
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return explain("declare exchange "+exchange, err)
	}
	return nil
}

// Declare declares the whole topology on ch.
func (t *Topology) Declare(ch *amqp.Channel) error {
	for _, ex := range t.OutputExchanges {
		if err := declareTopic(ch, ex); err != nil {
			return err
		}
	}
	if err := ch.ExchangeDeclare(t.DeadExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return explain("declare exchange "+t.DeadExchange, err)
	}
	if _, err := ch.QueueDeclare(t.DeadQueue, true, false, false, false, t.queueArgs(t.DeadMaxLength)); err != nil {
		return explain("declare queue "+t.DeadQueue, err)
	}
	if err := ch.QueueBind(t.DeadQueue, "", t.DeadExchange, false, nil); err != nil {
		return explain("bind "+t.DeadQueue, err)
	}
	inputArgs := t.queueArgs(t.MaxLength)
	// Past max length the oldest messages are dead-lettered, with the
	// reason "maxlen" in their x-death header, instead of vanishing.
	inputArgs["x-dead-letter-exchange"] = t.DeadExchange
	if _, err := ch.QueueDeclare(t.InputQueue, true, false, false, false, inputArgs); err != nil {
		return explain("declare queue "+t.InputQueue, err)
	}
	for _, b := range t.Bindings {
		if t.DeclareUpstream {
			if err := declareTopic(ch, b.Exchange); err != nil {
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
			return fmt.Errorf("%s: it exists with other settings (type, durability, length limit or queue type); delete it or configure it as it is: %w", what, err)
		case amqp.NotFound:
			return fmt.Errorf("%s: not found; an upstream exchange must exist before the pipeline binds to it: %w", what, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

var _ wamqp.TopologyBuilder = (*Topology)(nil)
