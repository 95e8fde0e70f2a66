package broker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// TestPublishWaitsNoLongerThanItsTimeout: when the broker stops answering
// (a proxy in front of it holds every byte), a publish on an open channel
// and one that needs a channel opened both give up within their timeout,
// at the same time: opening a channel holds no lock the others wait for.
// Once the broker answers again, publishing goes on.
func TestPublishWaitsNoLongerThanItsTimeout(t *testing.T) {
	p, conn := connectedThroughProxy(t, "publisher-timeout-test")
	ctx := context.Background()
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

// TestALostConnectionIsNotARefusal cuts the TCP connection under a
// publish that waits for its confirm. amqp091-go reports the loss as 501
// FRAME_ERROR, a code the broker also uses to refuse a publish; the
// publish's error must not read as a refusal, or the message would be
// parked as unpublishable instead of published again.
func TestALostConnectionIsNotARefusal(t *testing.T) {
	p, conn := connectedThroughProxy(t, "lost-connection-test")
	ctx := context.Background()
	pub := broker.NewPublisher(conn, 1)
	out := broker.Outgoing{RoutingKey: "lost-connection-test-nowhere", ContentType: "application/json", Body: []byte(`{}`)}
	if err := pub.Publish(ctx, 5*time.Second, out); err != nil {
		t.Fatalf("before the connection is lost: %v", err)
	}
	p.freeze()
	done := make(chan error, 1)
	go func() { done <- pub.Publish(ctx, 5*time.Second, out) }()
	time.Sleep(200 * time.Millisecond)
	p.cut()
	p.thaw()
	err := <-done
	var ce *broker.ChannelError
	if !errors.As(err, &ce) {
		t.Fatalf("a publish whose connection was cut: %v; want a *ChannelError", err)
	}
	t.Logf("the cut publish: %v (code %d)", err, ce.Code())
	if ce.Refused() || ce.ByBroker() {
		t.Errorf("a lost connection (%v, code %d) reads as the broker's refusal", err, ce.Code())
	}
}

// TestOnlyTheBrokersCloseIsARefusal: the codes with which the broker
// refuses a publish are a refusal only when the broker sent them.
func TestOnlyTheBrokersCloseIsARefusal(t *testing.T) {
	for _, c := range []struct {
		code   int
		server bool
		want   bool
	}{
		{amqp.AccessRefused, true, true}, {amqp.PreconditionFailed, true, true}, {amqp.FrameError, true, true},
		{amqp.NotAllowed, true, true}, {amqp.NotFound, true, false}, {amqp.ConnectionForced, true, false},
		{amqp.FrameError, false, false}, {amqp.ChannelError, false, false},
	} {
		ce := &broker.ChannelError{Err: &amqp.Error{Code: c.code, Server: c.server}}
		if got := ce.Refused(); got != c.want {
			t.Errorf("code %d sent by the broker %v: refused %v, want %v", c.code, c.server, got, c.want)
		}
	}
	if (&broker.ChannelError{}).Refused() {
		t.Error("a channel closed with no error reads as a refusal")
	}
}

// TestChannelErrorKeepsItsCause: a channel error wraps what closed the
// channel, so that errors.As sees through it.
func TestChannelErrorKeepsItsCause(t *testing.T) {
	ae := &amqp.Error{Code: amqp.AccessRefused, Reason: "no", Server: true}
	var got *amqp.Error
	if err := error(&broker.ChannelError{Err: ae}); !errors.As(err, &got) || got != ae {
		t.Errorf("errors.As through a ChannelError: %v", got)
	}
}

// connectedThroughProxy runs a Connection, named name, to the broker
// through a proxy the test can freeze and cut, and returns both once the
// connection is made.
func connectedThroughProxy(t *testing.T, name string) (*proxy, *broker.Connection) {
	t.Helper()
	brokertest.Require(t)
	u := brokertest.AdminURL()
	p := newProxy(t, hostOf(t, u))
	conn := broker.NewConnection(broker.ConnectionConfig{
		Addresses: broker.Addresses([]string{viaProxy(t, u, p)}),
		AMQP:      broker.AMQPConfig(name, nil),
	})
	runConnection(t, conn)
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Session(wait); err != nil {
		t.Fatal(err)
	}
	return p, conn
}
