package broker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestCountOfAQueueThatDoesNotAnswer: a count of a queue whose process
// does not answer gives up when its context ends, with a reason that
// names the queue and the command that finds such queues; once the queue
// answers again, so does the count.
func TestCountOfAQueueThatDoesNotAnswer(t *testing.T) {
	queue := brokertest.UniqueName("queue/pttest/count-unanswered")
	_, ch := emptyQueue(t, queue)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}

	conn := broker.NewConnection(broker.ConnectionConfig{
		Addresses: []broker.Address{{URL: brokertest.AdminURL()}},
		Logger:    slog.New(slog.NewTextHandler(&brokertest.Logs{}, nil)),
	})
	runConnection(t, conn)
	count := func(within time.Duration) (int, error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		began := time.Now()
		n, err := conn.QueueMessages(ctx, queue)
		return n, err, time.Since(began)
	}
	if n, err, _ := count(10 * time.Second); err != nil || n != 3 {
		t.Fatalf("count of a queue that answers: %d, %v; want 3", n, err)
	}

	resume := brokertest.SuspendQueue(t, queue, time.Minute)
	n, err, took := count(time.Second)
	if err == nil {
		t.Fatalf("count of a suspended queue: %d, no error", n)
	}
	if took > 3*time.Second {
		t.Errorf("count of a suspended queue with a 1s context returned after %s", took)
	}
	if msg := err.Error(); !strings.Contains(msg, queue) || !strings.Contains(msg, "rabbitmqctl list_unresponsive_queues") {
		t.Errorf("the reason %q does not name the queue and the command that finds it", msg)
	}

	resume()
	if n, err, _ := count(10 * time.Second); err != nil || n != 3 {
		t.Errorf("count once the queue answers again: %d, %v; want 3", n, err)
	}
}

// emptyQueue declares queue on the local broker, empty (a run cut short
// may have left messages in it), and deletes it when the test ends. It
// returns the admin connection and a channel on it.
func emptyQueue(t *testing.T, queue string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	admin := brokertest.Connect(t)
	ch, err := admin.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueuePurge(queue, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := admin.Channel(); err == nil {
			_, _ = ch.QueueDelete(queue, false, false, false)
		}
	})
	return admin, ch
}
