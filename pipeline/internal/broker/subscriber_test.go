package broker_test

import (
	"context"
	"log/slog"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/backoff"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// consuming is a Subscriber under test, on a queue of its own, with the
// bodies of the messages it handed over.
type consuming struct {
	t      *testing.T
	queue  string
	admin  *amqp.Connection
	conn   *broker.Connection
	sub    *broker.Subscriber
	logs   *brokertest.Logs
	bodies chan string
}

// subscribe runs a Subscriber of channels channels on queue (empty at
// first), over url, that declares queue again when asked to, and settles
// every message it hands over.
func subscribe(t *testing.T, queue, url string, channels int, policy backoff.Policy) *consuming {
	t.Helper()
	admin, _ := emptyQueue(t, queue)
	c := &consuming{t: t, queue: queue, admin: admin, logs: &brokertest.Logs{}, bodies: make(chan string, 100)}
	logger := slog.New(slog.NewTextHandler(c.logs, nil))
	c.conn = broker.NewConnection(broker.ConnectionConfig{
		Addresses: []broker.Address{{URL: url}},
		Backoff:   backoff.Policy{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond},
		Logger:    logger,
	})
	runConnection(t, c.conn)
	c.sub = broker.NewSubscriber(c.conn, broker.SubscriberConfig{
		Queue: queue, Prefetch: 4, Channels: channels, Backoff: policy, Logger: logger,
		Declare: func(conn *amqp.Connection) error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			_, err = ch.QueueDeclare(queue, false, false, false, false, nil)
			return err
		},
	})
	msgs, err := c.sub.Subscribe(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.sub.Close() })
	settle := broker.Settle(func(msg *message.Message) ([]*message.Message, error) {
		c.bodies <- string(msg.Payload)
		return nil, nil
	})
	go func() {
		for msg := range msgs {
			go func() { _, _ = settle(msg) }()
		}
	}()
	return c
}

// consumers are the tags of the queue's consumers, as the broker lists them.
func (c *consuming) consumers() map[string]bool {
	out, err := exec.Command("rabbitmqctl", "-q", "list_consumers", "queue_name", "consumer_tag").CombinedOutput()
	if err != nil {
		c.t.Fatalf("rabbitmqctl list_consumers: %v\n%s", err, out)
	}
	tags := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if q, tag, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok && q == c.queue {
			tags[tag] = true
		}
	}
	return tags
}

// waitForConsumers waits up to 10s until the queue has n consumers and the
// subscriber says it consumes, and returns their tags.
func (c *consuming) waitForConsumers(n int, what string) map[string]bool {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tags := c.consumers()
		if len(tags) == n && c.sub.Consuming() {
			return tags
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: consumers of %s are %v within 10s, not %d; logs:\n%s", what, c.queue, tags, n, c.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConsuming waits up to 10s until the subscriber says it consumes
// (or not), reading it every millisecond.
func (c *consuming) waitConsuming(want bool) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.sub.Consuming() != want {
		if time.Now().After(deadline) {
			c.t.Fatalf("the subscriber's Consuming() is not %v within 10s; logs:\n%s", want, c.logs)
		}
		time.Sleep(time.Millisecond)
	}
}

// handsOver publishes n messages to the queue and waits until the
// subscriber has handed every one over.
func (c *consuming) handsOver(n int) {
	c.t.Helper()
	pub, err := c.admin.Channel()
	if err != nil {
		c.t.Fatal(err)
	}
	defer pub.Close()
	for i := range n {
		if err := pub.Publish("", c.queue, false, false, amqp.Publishing{Body: []byte{byte('a' + i%26)}}); err != nil {
			c.t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case <-c.bodies:
		case <-time.After(10 * time.Second):
			c.t.Fatalf("%d of %d messages handed over within 10s; logs:\n%s", i, n, c.logs)
		}
	}
}

// TestChannelClosedAloneIsReplacedAlone: of a subscriber's two consuming
// channels, the one the broker closes (as it does on consumer_timeout) is
// replaced at once on the same connection, while the other keeps its
// consumer; both hand messages over afterwards.
func TestChannelClosedAloneIsReplacedAlone(t *testing.T) {
	c := subscribe(t, brokertest.UniqueName("queue/pttest/channel-closed-alone"), brokertest.AdminURL(), 2,
		backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second})
	before := c.waitForConsumers(2, "at start")
	session := c.conn.Current()

	closed := brokertest.CloseConsumerChannel(t, c.queue)
	if !before[closed] {
		t.Fatalf("closed the channel of consumer %q, not one of %v", closed, before)
	}
	after := c.waitForConsumers(2, "after one channel closed")
	if after[closed] {
		t.Errorf("consumer %s, whose channel closed, is still listed: %v", closed, after)
	}
	for tag := range before {
		if tag != closed && !after[tag] {
			t.Errorf("consumer %s, whose channel stayed open, was replaced too: before %v, after %v", tag, before, after)
		}
	}
	if c.conn.Current() != session {
		t.Errorf("the connection was made again; only the closed channel should be")
	}
	if logs := c.logs.String(); !strings.Contains(logs, "a channel consuming the input queue closed; opening another in its place") ||
		!strings.Contains(logs, "PRECONDITION_FAILED") {
		t.Errorf("no log line says that a channel closed, and why:\n%s", logs)
	}
	c.handsOver(40)
}

// TestDeletedQueueIsDeclaredAgain: when the input queue is deleted (the
// broker cancels its consumers), every channel declares it again and
// consumes; so does a channel that closed just before, whose new channel
// finds no queue.
func TestDeletedQueueIsDeclaredAgain(t *testing.T) {
	// The closed channel's replacement waits at least 1s, long after the
	// queue is gone.
	c := subscribe(t, brokertest.UniqueName("queue/pttest/deleted-while-replaced"), brokertest.AdminURL(), 2,
		backoff.Policy{Initial: 2 * time.Second, Max: 2 * time.Second})
	c.waitForConsumers(2, "at start")
	deleteQueue := func() {
		t.Helper()
		ch, err := c.admin.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		if _, err := ch.QueueDelete(c.queue, false, false, false); err != nil {
			t.Fatal(err)
		}
	}

	deleteQueue()
	c.waitForConsumers(2, "after the queue was deleted")
	if !strings.Contains(c.logs.String(), "the broker stopped a consumer of the input queue (was it deleted?); declaring it again") {
		t.Errorf("no log line says that the queue is declared again:\n%s", c.logs)
	}
	c.handsOver(10)

	brokertest.CloseConsumerChannel(t, c.queue)
	deleteQueue()
	c.waitForConsumers(2, "after a channel closed and the queue was deleted")
	c.handsOver(10)
}

// TestConsumingAgainAfterLossesDoesNotSlowDown: the wait before consuming
// again after a lost connection grows only while losses follow each other
// closely; after a connection that served for longer than the backoff's
// maximum, the next loss waits a first wait again.
func TestConsumingAgainAfterLossesDoesNotSlowDown(t *testing.T) {
	brokertest.Require(t)
	admin, err := url.Parse(brokertest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, admin.Host)
	through := *admin
	through.Host = p.ln.Addr().String()
	// Waits of 125-250ms at first; 1-2s from the fourth loss in a row.
	c := subscribe(t, brokertest.UniqueName("queue/pttest/losses-spread-out"), through.String(), 1,
		backoff.Policy{Initial: 250 * time.Millisecond, Max: 2 * time.Second})
	c.waitForConsumers(1, "at start")
	for loss := range 4 {
		time.Sleep(2500 * time.Millisecond) // serving longer than the maximum wait
		p.cut()
		began := time.Now()
		c.waitConsuming(false)
		c.waitConsuming(true)
		took := time.Since(began)
		t.Logf("loss %d: consuming again after %s", loss+1, took)
		if took > 900*time.Millisecond {
			t.Errorf("loss %d, after 2.5s of serving: consuming again took %s, not a first wait (125-250ms); logs:\n%s", loss+1, took, c.logs)
		}
	}
	c.handsOver(10)
}
