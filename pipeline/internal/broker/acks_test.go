package broker

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// brokerAcks answers acks and nacks as RabbitMQ's channel does: it holds
// the outstanding tags, an ack or nack must name one of them (else the
// broker closes the channel: "unknown delivery tag"), and a multiple ack
// answers every outstanding tag up to the one it names.
type brokerAcks struct {
	mu          sync.Mutex
	outstanding map[uint64]bool
	frames      int
	acked       int
	errors      []string
	// block, when set, holds every write until it is closed.
	block chan struct{}
}

func newBrokerAcks(n uint64) *brokerAcks {
	b := &brokerAcks{outstanding: map[uint64]bool{}}
	for tag := uint64(1); tag <= n; tag++ {
		b.outstanding[tag] = true
	}
	return b
}

func (b *brokerAcks) Ack(tag uint64, multiple bool) error {
	if b.block != nil {
		<-b.block
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames++
	if !b.outstanding[tag] {
		b.errors = append(b.errors, fmt.Sprintf("ack of tag %d (multiple %v): unknown delivery tag", tag, multiple))
		return nil
	}
	for t := range b.outstanding {
		if t == tag || multiple && t < tag {
			delete(b.outstanding, t)
			b.acked++
		}
	}
	return nil
}

func (b *brokerAcks) Nack(tag uint64, multiple, requeue bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames++
	if multiple || !b.outstanding[tag] {
		b.errors = append(b.errors, fmt.Sprintf("nack of tag %d (multiple %v): not one outstanding tag", tag, multiple))
		return nil
	}
	delete(b.outstanding, tag)
	return nil
}

func (b *brokerAcks) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		t.Error(e)
	}
	if len(b.outstanding) > 0 {
		t.Errorf("%d deliveries never answered", len(b.outstanding))
	}
}

// TestAcksInOrderShareFrames: acks that settle while another goroutine
// writes are left to it, return at once, and go out as one multiple ack;
// each ack's callback runs once it is written.
func TestAcksInOrderShareFrames(t *testing.T) {
	b := newBrokerAcks(100)
	b.block = make(chan struct{})
	s := newSettler(b, time.Hour)
	var sent atomic.Int32
	go s.ack(1, func() { sent.Add(1) })
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.writing
	})
	for tag := uint64(2); tag <= 100; tag++ {
		s.ack(tag, func() { sent.Add(1) })
	}
	if n := sent.Load(); n != 0 {
		t.Fatalf("%d acks counted as sent while the write was blocked", n)
	}
	close(b.block)
	waitFor(t, func() bool { return sent.Load() == 100 })
	s.stop()
	b.check(t)
	if b.frames != 2 {
		t.Errorf("100 acks settled in order took %d frames, want 2 (the first ack, then the 99 settled while it was written)", b.frames)
	}
}

// TestAckAboveAGapWaitsThenGoesAlone: an ack above a delivery still in
// flight is held for the hold time, then sent on its own; the delivery
// below, once acked, is answered without naming a tag already answered.
func TestAckAboveAGapWaitsThenGoesAlone(t *testing.T) {
	const hold = 50 * time.Millisecond
	b := newBrokerAcks(3)
	s := newSettler(b, hold)
	var sent atomic.Int32
	start := time.Now()
	s.ack(2, func() { sent.Add(1) })
	s.ack(3, func() { sent.Add(1) })
	time.Sleep(hold / 5)
	if sent.Load() != 0 {
		t.Fatalf("acks above a gap went out after %s, before the hold of %s", time.Since(start), hold)
	}
	waitFor(t, func() bool { return sent.Load() == 2 })
	switch waited := time.Since(start); {
	case waited < hold:
		t.Errorf("acks above a gap went out after %s, before the hold of %s", waited, hold)
	case waited > hold+time.Second: // loose: a busy machine may be late
		t.Errorf("acks above a gap went out after %s, long after the hold of %s", waited, hold)
	}
	s.ack(1, func() { sent.Add(1) })
	waitFor(t, func() bool { return sent.Load() == 3 })
	s.stop()
	b.check(t)
}

// TestNackInBetween: a nack goes out at once, and a later multiple ack
// never answers the nacked tag.
func TestNackInBetween(t *testing.T) {
	b := newBrokerAcks(4)
	s := newSettler(b, time.Hour)
	var sent atomic.Int32
	s.ack(1, func() { sent.Add(1) })
	s.nack(3, true, func() { sent.Add(1) })
	s.ack(2, func() { sent.Add(1) })
	s.ack(4, func() { sent.Add(1) })
	waitFor(t, func() bool { return sent.Load() == 4 })
	s.stop()
	b.check(t)
}

// TestStopSendsHeldAcks: stop answers every held ack, and acks after it
// go out at once.
func TestStopSendsHeldAcks(t *testing.T) {
	b := newBrokerAcks(3)
	s := newSettler(b, time.Hour)
	var sent atomic.Int32
	s.ack(3, func() { sent.Add(1) })
	s.stop()
	if sent.Load() != 1 {
		t.Fatalf("stop left a held ack unsent")
	}
	s.ack(1, func() { sent.Add(1) })
	s.nack(2, false, func() { sent.Add(1) })
	if sent.Load() != 3 {
		t.Fatalf("acks after stop were not sent at once")
	}
	b.check(t)
}

// TestAcksInAnyOrder settles 2,000 deliveries from many goroutines in a
// random order, a tenth of them nacked, and checks that the broker's rules
// hold and every delivery is answered once.
func TestAcksInAnyOrder(t *testing.T) {
	for round := range 20 {
		const n = 2000
		b := newBrokerAcks(n)
		s := newSettler(b, time.Millisecond)
		tags := make([]uint64, n)
		for i := range tags {
			tags[i] = uint64(i + 1)
		}
		settleAtRandom(t, s, tags, true)
		b.check(t)
		if t.Failed() {
			t.Fatalf("round %d", round)
		}
	}
}

// settleAtRandom settles tags in a random order from 8 goroutines, a
// tenth of them nacked (requeued when requeue is set), waits until every
// one is sent, and stops s.
func settleAtRandom(t *testing.T, s *settler, tags []uint64, requeue bool) {
	t.Helper()
	work := make(chan uint64, len(tags))
	for _, i := range rand.Perm(len(tags)) {
		work <- tags[i]
	}
	close(work)
	var sent atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for tag := range work {
				if rand.IntN(10) == 0 {
					s.nack(tag, requeue, func() { sent.Add(1) })
				} else {
					s.ack(tag, func() { sent.Add(1) })
				}
				if rand.IntN(30) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, func() bool { return int(sent.Load()) == len(tags) })
	s.stop()
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAcksOnTheBroker settles 1,000 real deliveries through a settler, in
// a random order from many goroutines, a tenth of them nacked without
// requeueing, and checks with RabbitMQ itself: the channel is still open
// (a wrong tag would have closed it: "unknown delivery tag"), and nothing
// is left in the queue, ready or unacked, once the channel closes.
func TestAcksOnTheBroker(t *testing.T) {
	const n = 1000
	conn := brokertest.Connect(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Qos(n, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newSettler(ch, 2*time.Millisecond)
	tags := make([]uint64, 0, n)
	for range n {
		d := <-deliveries
		tags = append(tags, d.DeliveryTag)
	}
	settleAtRandom(t, s, tags, false)
	// A round trip: the broker has read every ack written before it.
	if _, err := ch.QueueDeclarePassive(q.Name, false, false, true, false, nil); err != nil {
		t.Fatalf("the broker closed the channel: %v", err)
	}
	if ch.IsClosed() {
		t.Fatal("the broker closed the channel")
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	check, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	left, err := check.QueueDeclarePassive(q.Name, false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if left.Messages != 0 {
		t.Errorf("%d of %d deliveries went back to the queue: their acks were lost or refused", left.Messages, n)
	}
}
