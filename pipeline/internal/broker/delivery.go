// Package broker connects pipelines to RabbitMQ on amqp091-go: a
// connection that waits for the broker and comes back after it goes away,
// a subscriber that keeps many deliveries in flight for Watermill's router,
// a publisher whose confirms are pipelined on shared confirm channels, and
// the topology of a pipeline's queues.
//
// The trust boundary lives here. What the broker delivered (a Delivery:
// exchange, routing key, properties, headers) is data; what the flow
// publishes (an Outgoing: exchange, routing key, CC, content type) is built
// from the flow's own typed values. The two never share a namespace, so no
// upstream header can say where, how or what is published.
package broker

import (
	"context"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delivery is one message as the broker delivered it. Every field is
// upstream data: none is ever read as an instruction.
type Delivery struct {
	// Exchange and RoutingKey are where the broker says it was published.
	// The exchange is the broker's own word, never a header's.
	Exchange, RoutingKey string
	// ContentType and MessageID are the publisher's properties.
	ContentType, MessageID string
	// Redelivered is true when the broker delivered it before.
	Redelivered bool
	// Timestamp is the publisher's timestamp property, if any.
	Timestamp time.Time
	// Headers are the publisher's headers, as AMQP values.
	Headers amqp.Table
	// Body is the raw body.
	Body []byte

	// reject makes a nack reject the delivery instead of requeueing it.
	reject atomic.Bool
	// settled is set by the first settle; ack and nack answer the broker.
	settled   atomic.Bool
	ack, nack func()
}

// settle acks the delivery, or nacks it (requeued, unless Reject was
// called), once; later calls do nothing.
func (d *Delivery) settle(ack bool) {
	if d.settled.Swap(true) {
		return
	}
	if ack {
		d.ack()
	} else {
		d.nack()
	}
}

// Reject asks that the delivery, once its message is nacked, be rejected
// without requeueing: the queue then dead-letters it (the input queue
// into the dead queue), where it stays for a person to see. It is the
// last resort of a message that could not be parked.
func (d *Delivery) Reject() { d.reject.Store(true) }

// deliveryKey is the context key of a message's Delivery.
type deliveryKey struct{}

// WithDelivery returns ctx carrying d.
func WithDelivery(ctx context.Context, d *Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// DeliveryFrom returns the Delivery a message's context carries: the
// subscriber puts it there, typed, out of reach of any header.
func DeliveryFrom(ctx context.Context) (*Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(*Delivery)
	return d, ok
}

// deliveryOf copies what the broker said of a delivery.
func deliveryOf(d *amqp.Delivery) *Delivery {
	return &Delivery{
		Exchange:    d.Exchange,
		RoutingKey:  d.RoutingKey,
		ContentType: d.ContentType,
		MessageID:   d.MessageId,
		Redelivered: d.Redelivered,
		Timestamp:   d.Timestamp,
		Headers:     d.Headers,
		Body:        d.Body,
	}
}

// Outgoing is one message to publish. The flow fills every field from its
// own typed values: the exchange is one the pipeline owns, the routing key
// and CC come from the translator and the rules, and Headers hold only
// what the flow chose to send.
type Outgoing struct {
	// Exchange and RoutingKey route it.
	Exchange, RoutingKey string
	// CC lists sender-selected routing keys, sent as the CC header (an
	// AMQP array of strings).
	CC []string
	// ContentType is sent as it is: application/json for outputs, the
	// input's own for its copies.
	ContentType string
	// MessageID is the message id property.
	MessageID string
	// Headers are sent as they are, but for CC and BCC: only the CC
	// field routes copies.
	Headers amqp.Table
	// Body is the body.
	Body []byte
}

// publishing is the AMQP publishing of o: persistent, timestamped, with
// the CC header as the array amqp091-go encodes ([]interface{}, not
// []string). CC and BCC entries of Headers are never sent: only o.CC
// routes a copy.
func (o *Outgoing) publishing(now time.Time) amqp.Publishing {
	p := amqp.Publishing{
		Body:         o.Body,
		DeliveryMode: amqp.Persistent,
		ContentType:  o.ContentType,
		MessageId:    o.MessageID,
		Timestamp:    now,
	}
	if len(o.Headers) == 0 && len(o.CC) == 0 {
		return p
	}
	headers := make(amqp.Table, len(o.Headers)+1)
	for k, v := range o.Headers {
		if k != "CC" && k != "BCC" {
			headers[k] = v
		}
	}
	if len(o.CC) > 0 {
		cc := make([]interface{}, len(o.CC))
		for i, route := range o.CC {
			cc[i] = route
		}
		headers["CC"] = cc
	}
	p.Headers = headers
	return p
}
