// Package broker wires pipelines to RabbitMQ through watermill-amqp: a
// marshaler that keeps what a delivery says about itself, a topology builder
// for Pulse-style input and dead queues, and a publisher that keeps confirms
// in flight together.
package broker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Metadata keys a consumed message carries about its delivery. They travel
// on as headers when the message is parked in a dead queue, so the parked
// copy says where it came from.
const (
	// MetaExchange is the exchange the delivery was published to.
	MetaExchange = "x-pulse-exchange"
	// MetaRoutingKey is the delivery's routing key.
	MetaRoutingKey = "x-pulse-routing-key"
	// MetaRedelivered is "true" when the broker delivered it before.
	MetaRedelivered = "x-pulse-redelivered"
	// MetaMessageID is the publisher's message id, where it set one.
	MetaMessageID = "x-pulse-message-id"
	// MetaContentType is the delivery's content type.
	MetaContentType = "x-pulse-content-type"
	// MetaOriginalPrefix prefixes upstream headers that must not be sent on
	// as they are: CC and BCC, which would route the parked copy, and
	// x-death, which RabbitMQ keeps as an array and would find a string.
	MetaOriginalPrefix = "x-original-"
)

// Metadata keys that steer a publish; they are never sent as headers.
const (
	// MetaPublishExchange overrides the topic as the exchange to publish to.
	MetaPublishExchange = "publish.exchange"
	// MetaPublishRoutingKey is the routing key to publish with; when absent
	// MetaRoutingKey is used.
	MetaPublishRoutingKey = "publish.routing_key"
	// MetaPublishCC is a JSON array of CC routing keys.
	MetaPublishCC = "publish.cc"
	// MetaPublishContentType is the content type; default application/json.
	MetaPublishContentType = "publish.content_type"
)

// Marshaler converts between Watermill messages and AMQP. Unlike
// watermill-amqp's DefaultMarshaler, Unmarshal never fails: a header that is
// not a string (Pulse publishers send CC as an array) is carried as JSON,
// and the delivery's exchange, routing key, redelivered flag, message id and
// content type are kept as metadata.
type Marshaler struct{}

// Unmarshal implements amqp.Marshaler.
func (Marshaler) Unmarshal(d amqp.Delivery) (*message.Message, error) {
	msg := message.NewMessage(d.MessageId, d.Body)
	md := make(message.Metadata, len(d.Headers)+5)
	for key, value := range d.Headers {
		if key == "CC" || key == "BCC" || key == "x-death" {
			key = MetaOriginalPrefix + key
		}
		md[key] = headerString(value)
	}
	md[MetaExchange] = d.Exchange
	md[MetaRoutingKey] = d.RoutingKey
	md[MetaRedelivered] = strconv.FormatBool(d.Redelivered)
	md[MetaMessageID] = d.MessageId
	md[MetaContentType] = d.ContentType
	msg.Metadata = md
	return msg, nil
}

// headerString renders a header value as text: strings as they are,
// anything else as JSON.
func headerString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// Marshal implements amqp.Marshaler: a persistent publishing with the
// message's UUID as message id, the content type, the CC header as an AMQP
// array, and every other metadata entry as a string header.
func (Marshaler) Marshal(msg *message.Message) (amqp.Publishing, error) {
	p := amqp.Publishing{
		Body:         msg.Payload,
		DeliveryMode: amqp.Persistent,
		ContentType:  "application/json",
		MessageId:    msg.UUID,
		Timestamp:    time.Now().UTC(),
	}
	headers := amqp.Table{}
	for key, value := range msg.Metadata {
		switch key {
		case MetaPublishExchange, MetaPublishRoutingKey:
		case MetaPublishContentType:
			p.ContentType = value
		case MetaPublishCC:
			var cc []string
			if err := json.Unmarshal([]byte(value), &cc); err != nil {
				return p, fmt.Errorf("metadata %s is not a JSON array of strings: %w", MetaPublishCC, err)
			}
			if len(cc) > 0 {
				// amqp091-go encodes []interface{} as an AMQP array, []string not at all.
				arr := make([]interface{}, len(cc))
				for i, route := range cc {
					arr[i] = route
				}
				headers["CC"] = arr
			}
		default:
			headers[key] = value
		}
	}
	if len(headers) > 0 {
		p.Headers = headers
	}
	return p, nil
}

// Route returns the exchange and routing key a message is published with:
// the metadata's, or the topic and the original routing key.
func Route(topic string, msg *message.Message) (exchange, routingKey string) {
	exchange = msg.Metadata.Get(MetaPublishExchange)
	if exchange == "" {
		exchange = topic
	}
	routingKey = msg.Metadata.Get(MetaPublishRoutingKey)
	if routingKey == "" {
		routingKey = msg.Metadata.Get(MetaRoutingKey)
	}
	return exchange, routingKey
}
