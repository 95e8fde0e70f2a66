package broker_test

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/backoff"
	"github.com/pulsetranslator/pulsetranslator/pipeline/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/brokertest"
)

// TestChannelClosedAloneIsReplacedAlone: of a subscriber's two consuming
// channels, the one the broker closes (as it does on consumer_timeout) is
// replaced at once on the same connection, while the other keeps its
// consumer and goes on handing messages over; no message is lost.
func TestChannelClosedAloneIsReplacedAlone(t *testing.T) {
	const queue = "queue/pttest/channel-closed-alone"
	admin, _ := emptyQueue(t, queue)

	logs := &brokertest.Logs{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	conn := broker.NewConnection(broker.ConnectionConfig{
		Addresses: []broker.Address{{URL: brokertest.AdminURL()}},
		Logger:    logger,
	})
	runConnection(t, conn)
	sub := broker.NewSubscriber(conn, broker.SubscriberConfig{
		Queue: queue, Prefetch: 4, Channels: 2,
		Backoff: backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second},
		Logger:  logger,
	})
	msgs, err := sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	bodies := make(chan string, 100)
	settle := broker.Settle(func(msg *message.Message) ([]*message.Message, error) {
		bodies <- string(msg.Payload)
		return nil, nil
	})
	go func() {
		for msg := range msgs {
			go func() { _, _ = settle(msg) }()
		}
	}()

	consumers := func() map[string]bool {
		out, err := exec.Command("rabbitmqctl", "-q", "list_consumers", "queue_name", "consumer_tag").CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl list_consumers: %v\n%s", err, out)
		}
		tags := map[string]bool{}
		for line := range strings.Lines(string(out)) {
			if q, tag, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok && q == queue {
				tags[tag] = true
			}
		}
		return tags
	}
	waitForTwo := func(what string) map[string]bool {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			tags := consumers()
			if len(tags) == 2 && sub.Consuming() {
				return tags
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: consumers of %s are %v within 10s, not two; logs:\n%s", what, queue, tags, logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	before := waitForTwo("at start")
	session := conn.Current()

	closed := brokertest.CloseConsumerChannel(t, queue)
	if !before[closed] {
		t.Fatalf("closed the channel of consumer %q, not one of %v", closed, before)
	}
	after := waitForTwo("after one channel closed")
	if after[closed] {
		t.Errorf("consumer %s, whose channel closed, is still listed: %v", closed, after)
	}
	for tag := range before {
		if tag != closed && !after[tag] {
			t.Errorf("consumer %s, whose channel stayed open, was replaced too: before %v, after %v", tag, before, after)
		}
	}
	if conn.Current() != session {
		t.Errorf("the connection was made again; only the closed channel should be")
	}
	if !strings.Contains(logs.String(), "a channel consuming the input queue closed; opening another in its place") ||
		!strings.Contains(logs.String(), "PRECONDITION_FAILED") {
		t.Errorf("no log line says that a channel closed, and why:\n%s", logs)
	}

	// Both channels hand messages over.
	pub, err := admin.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if err := pub.Publish("", queue, false, false, amqp.Publishing{Body: []byte{byte('a' + i%26)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case <-bodies:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages handed over within 10s; logs:\n%s", i, n, logs)
		}
	}
}
