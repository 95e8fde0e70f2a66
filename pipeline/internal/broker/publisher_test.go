package broker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// TestPublishWaitsNoLongerThanItsTimeout: when the broker stops answering
// (a proxy in front of it holds every byte), a publish on an open channel
// and one that needs a channel opened both give up within their timeout,
// at the same time: opening a channel holds no lock the others wait for.
// Once the broker answers again, publishing goes on.
func TestPublishWaitsNoLongerThanItsTimeout(t *testing.T) {
	brokertest.Require(t)
	u := brokertest.AdminURL()
	p := newProxy(t, hostOf(t, u))
	conn := broker.NewConnection(broker.ConnectionConfig{
		Addresses: broker.Addresses([]string{viaProxy(t, u, p)}),
		AMQP:      broker.AMQPConfig("publisher-timeout-test", nil),
	})
	runConnection(t, conn)
	ctx := context.Background()
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := conn.Session(wait); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(conn, 2)
	out := broker.Outgoing{Exchange: "", RoutingKey: "publisher-timeout-test-nowhere", ContentType: "application/json", Body: []byte(`{}`)}
	// The first opens one of the two channels.
	if err := pub.Publish(ctx, 5*time.Second, out); err != nil {
		t.Fatalf("before the broker stops answering: %v", err)
	}
	p.freeze()
	const timeout = 300 * time.Millisecond
	began := time.Now()
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = pub.Publish(ctx, timeout, out) })
	}
	wg.Wait()
	took := time.Since(began)
	for i, err := range errs {
		if !errors.Is(err, broker.ErrNoConfirm) {
			t.Errorf("publish %d to a broker that does not answer: %v; want no confirm", i, err)
		}
	}
	if took > 4*timeout {
		t.Errorf("four publishes with a timeout of %s to a broker that does not answer took %s together", timeout, took)
	}
	p.thaw()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := pub.Publish(ctx, 2*time.Second, out)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("once the broker answers again: %v", err)
		}
	}
}

// TestSubscriberClosesOnce: a subscriber closed before it subscribed may
// be closed again, and may not subscribe.
func TestSubscriberClosesOnce(t *testing.T) {
	conn := broker.NewConnection(broker.ConnectionConfig{Addresses: broker.Addresses([]string{"amqp://127.0.0.1:1/"})})
	s := broker.NewSubscriber(conn, broker.SubscriberConfig{Queue: "q"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(context.Background(), "q"); err == nil {
		t.Error("a closed subscriber subscribed")
	}
}
