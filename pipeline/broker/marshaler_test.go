package broker_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/broker"
)

// TestUnmarshalKeepsDelivery checks what watermill-amqp's DefaultMarshaler
// gets wrong: an array CC header must not fail the delivery, and the
// delivery's routing key, exchange and flags must survive.
func TestUnmarshalKeepsDelivery(t *testing.T) {
	msg, err := broker.Marshaler{}.Unmarshal(amqp.Delivery{
		Exchange: "exchange/build/", RoutingKey: "build.x.1.finished", Redelivered: true,
		MessageId: "m1", ContentType: "application/json", Body: []byte(`{}`),
		Headers: amqp.Table{"CC": []interface{}{"route.a", "route.b"}, "n": int32(3), "s": "text",
			"x-death": []interface{}{amqp.Table{"reason": "expired", "count": int64(1)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		broker.MetaExchange: "exchange/build/", broker.MetaRoutingKey: "build.x.1.finished",
		broker.MetaRedelivered: "true", broker.MetaMessageID: "m1", broker.MetaContentType: "application/json",
		"x-original-CC": `["route.a","route.b"]`, "n": "3", "s": "text",
		"x-original-x-death": `[{"count":1,"reason":"expired"}]`,
	}
	for k, v := range want {
		if got := msg.Metadata.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, has := msg.Metadata["CC"]; has {
		t.Error("an upstream CC header is kept under its own name; a parked copy would be routed by it")
	}
	if _, has := msg.Metadata["x-death"]; has {
		t.Error("x-death is kept under its own name; a parked copy would carry it as a string")
	}
}

// TestMarshalCCIsAnAMQPArray checks the CC header is []interface{} of
// strings (amqp091-go does not encode []string) and steering metadata is
// not sent as headers.
func TestMarshalCCIsAnAMQPArray(t *testing.T) {
	msg := message.NewMessage("id-1", []byte(`{}`))
	msg.Metadata.Set(broker.MetaPublishCC, `["route.tree.x","route.platform.y"]`)
	msg.Metadata.Set(broker.MetaPublishExchange, "exchange/me/out")
	msg.Metadata.Set(broker.MetaPublishRoutingKey, "build.x")
	msg.Metadata.Set("x-pulsetranslator-class", "schema")
	p, err := broker.Marshaler{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	cc, ok := p.Headers["CC"].([]interface{})
	if !ok || len(cc) != 2 || cc[0] != "route.tree.x" {
		t.Fatalf("CC header %#v", p.Headers["CC"])
	}
	if err := p.Headers.Validate(); err != nil {
		t.Fatalf("headers are not an AMQP table: %v", err)
	}
	if p.DeliveryMode != amqp.Persistent || p.ContentType != "application/json" || p.MessageId != "id-1" {
		t.Errorf("publishing %+v", p)
	}
	for _, k := range []string{broker.MetaPublishExchange, broker.MetaPublishRoutingKey, broker.MetaPublishCC} {
		if _, has := p.Headers[k]; has {
			t.Errorf("steering key %s sent as a header", k)
		}
	}
	if p.Headers["x-pulsetranslator-class"] != "schema" {
		t.Error("other metadata must travel as headers")
	}
	if ex, key := broker.Route("default", msg); ex != "exchange/me/out" || key != "build.x" {
		t.Errorf("Route = %s %s", ex, key)
	}
}
