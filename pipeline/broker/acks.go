package broker

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// ackHold is how long an ack waits, when a delivery below it is still in
// flight, for that one to settle so that one frame answers both; then it
// is sent on its own. It bounds how long a settled message keeps its
// prefetch slot because of a slower one.
const ackHold = 20 * time.Millisecond

// ackSender is what a settler answers the broker with: an amqp.Channel.
type ackSender interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

// settler answers the broker for the deliveries of one channel, whose
// delivery tags are 1, 2, 3, … in the order they came.
//
// Acks go out in batches. One goroutine writes them: each time it wakes
// it takes every ack settled since its last write and answers, with one
// multiple ack, all of those below the lowest delivery still in flight.
// Under load that is one frame for many messages, where an ack each costs
// a write on the socket and a frame the broker parses; when messages come
// one at a time it is one frame each, sent at once. An ack above a
// delivery still in flight waits up to ackHold for it, then goes on its
// own, so no message holds up another's ack for longer than that.
//
// Nacks go out at once, each on its own: they are rare, and a requeued
// delivery should be back in the queue without delay.
//
// A multiple ack names the highest of the acks it answers, never a tag
// already answered: RabbitMQ closes the channel on an ack of a tag it no
// longer holds ("unknown delivery tag"), even a multiple one. Tags below
// it that were answered on their own, by an ack or a nack, are simply no
// longer there to answer.
type settler struct {
	send ackSender
	hold time.Duration

	mu sync.Mutex
	// floor is the highest tag with every tag up to it settled.
	floor uint64
	// settled holds the settled tags above floor.
	settled map[uint64]struct{}
	// held are the acks not yet sent, in the order they settled.
	held []heldAck
	// stopped is set by stop: acks are then sent at once, on their own.
	stopped bool

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// heldAck is one ack not yet sent, and what to call once it is.
type heldAck struct {
	tag  uint64
	at   time.Time
	sent func()
}

// newSettler returns a settler of one channel, and starts its writer.
func newSettler(send ackSender, hold time.Duration) *settler {
	s := &settler{
		send:    send,
		hold:    hold,
		settled: map[uint64]struct{}{},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s
}

// ack settles tag as acked; sent is called once the ack is written (or
// the write failed, when the channel closed and the broker returns the
// delivery to the queue anyway).
func (s *settler) ack(tag uint64, sent func()) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = s.send.Ack(tag, false)
		sent()
		return
	}
	s.held = append(s.held, heldAck{tag: tag, at: time.Now(), sent: sent})
	s.markSettled(tag)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// nack answers tag with a nack at once (requeued when requeue is true),
// then calls sent. It writes under the lock, before the tag counts as
// settled, so that no multiple ack can answer the tag first.
func (s *settler) nack(tag uint64, requeue bool, sent func()) {
	s.mu.Lock()
	_ = s.send.Nack(tag, false, requeue)
	s.markSettled(tag)
	s.mu.Unlock()
	sent()
}

// markSettled records tag and moves the floor over every settled tag
// that now follows it. s.mu is held.
func (s *settler) markSettled(tag uint64) {
	if tag <= s.floor {
		return
	}
	s.settled[tag] = struct{}{}
	for {
		if _, ok := s.settled[s.floor+1]; !ok {
			return
		}
		delete(s.settled, s.floor+1)
		s.floor++
	}
}

// run writes the held acks each time an ack comes, and sends an ack that
// waited ackHold above a gap on its own, until stop.
func (s *settler) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.quit:
			s.flush(time.Time{})
			return
		}
		if next := s.flush(time.Now()); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}

// flush sends one multiple ack for the held acks at or below the floor,
// and, on its own, each held ack above it that was settled before now
// less the hold (every one, when now is zero). It returns when the
// oldest ack it kept falls due, or zero when it kept none. Only run calls
// it, so acks are written by one goroutine, one flush after another.
func (s *settler) flush(now time.Time) (next time.Time) {
	s.mu.Lock()
	var covered, due []heldAck
	var top uint64
	kept := s.held[:0]
	for _, h := range s.held {
		switch {
		case h.tag <= s.floor:
			covered = append(covered, h)
			top = max(top, h.tag)
		case now.IsZero() || now.Sub(h.at) >= s.hold:
			due = append(due, h)
		default:
			kept = append(kept, h)
			if next.IsZero() {
				next = h.at.Add(s.hold)
			}
		}
	}
	clear(s.held[len(kept):])
	s.held = kept
	s.mu.Unlock()

	if len(covered) > 0 {
		// One ack answers them all: every tag below top is settled, and
		// those not among these were answered already.
		_ = s.send.Ack(top, len(covered) > 1)
	}
	slices.SortFunc(due, func(a, b heldAck) int { return cmp.Compare(a.tag, b.tag) })
	for _, h := range due {
		_ = s.send.Ack(h.tag, false)
	}
	for _, h := range covered {
		h.sent()
	}
	for _, h := range due {
		h.sent()
	}
	return next
}

// stop sends every held ack and stops the writer; later acks are sent at
// once, on their own. It waits for the writer to end.
func (s *settler) stop() {
	s.mu.Lock()
	already := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if already {
		<-s.done
		return
	}
	close(s.quit)
	<-s.done
}
