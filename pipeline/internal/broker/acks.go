package broker

import (
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
// Acks go out in batches, by group commit: the goroutine that settles an
// ack while no ack is being written writes it, and goes on writing, in
// one frame each time, whatever acks settled meanwhile; a goroutine that
// settles one while another writes leaves it to that one. Each frame is a
// multiple ack that answers every settled ack below the lowest delivery
// still in flight. Under load that is one frame for many messages, where
// an ack each costs a write on the socket and a frame the broker parses;
// when messages come one at a time it is one frame each, sent at once,
// and no goroutine is woken to send it. An ack above a delivery still in
// flight waits up to the hold for it (a timer), then goes on its own, so
// no message holds up another's ack for longer than that.
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
	// writing is set while a goroutine writes acks; written is signalled
	// when it ends.
	writing bool
	written sync.Cond
	// timer sends held acks that fell due; armed is set while it runs.
	timer *time.Timer
	armed bool
	// stopped is set by stop: acks are then sent at once, on their own.
	stopped bool
}

// heldAck is one ack not yet sent, and what to call once it is.
type heldAck struct {
	tag  uint64
	at   time.Time
	sent func()
}

// newSettler returns a settler of one channel.
func newSettler(send ackSender, hold time.Duration) *settler {
	s := &settler{send: send, hold: hold, settled: map[uint64]struct{}{}}
	s.written.L = &s.mu
	s.timer = time.AfterFunc(time.Hour, s.due)
	s.timer.Stop()
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
	if s.writing {
		s.mu.Unlock()
		return
	}
	s.writing = true
	s.write()
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

// due is the timer's: it writes the held acks that fell due, unless a
// goroutine is writing (it will see them).
func (s *settler) due() {
	s.mu.Lock()
	s.armed = false
	if s.writing || s.stopped {
		s.mu.Unlock()
		return
	}
	s.writing = true
	s.write()
}

// write sends batches until none is left, then arms the timer for the
// acks still held. It is called with s.mu held and s.writing set, by the
// one goroutine that set it, and returns with s.mu released; the writes
// themselves are made without the lock.
func (s *settler) write() {
	for {
		batch := s.take(time.Now())
		if batch.empty() {
			break
		}
		s.mu.Unlock()
		batch.send(s.send)
		s.mu.Lock()
	}
	s.writing = false
	s.written.Broadcast()
	if len(s.held) > 0 && !s.armed && !s.stopped {
		s.armed = true
		s.timer.Reset(time.Until(s.held[0].at.Add(s.hold)))
	}
	s.mu.Unlock()
}

// ackBatch is what one write sends: a (multiple) ack of the held acks at
// or below the floor, top being the highest, and the acks that waited
// out the hold above it, each on its own.
type ackBatch struct {
	covered, due []heldAck
	top          uint64
}

func (b *ackBatch) empty() bool { return len(b.covered) == 0 && len(b.due) == 0 }

// take removes from the held acks those the next write sends: every one
// at or below the floor, and each one above it settled before now less
// the hold (every one, when now is zero). s.mu is held.
func (s *settler) take(now time.Time) (b ackBatch) {
	kept := s.held[:0]
	for _, h := range s.held {
		switch {
		case h.tag <= s.floor:
			b.covered = append(b.covered, h)
			b.top = max(b.top, h.tag)
		case now.IsZero() || now.Sub(h.at) >= s.hold:
			b.due = append(b.due, h)
		default:
			kept = append(kept, h)
		}
	}
	clear(s.held[len(kept):])
	s.held = kept
	return b
}

// send writes the batch and calls each ack's sent.
func (b *ackBatch) send(to ackSender) {
	if len(b.covered) > 0 {
		// One ack answers them all: every tag below top is settled, and
		// those not among these were answered already.
		_ = to.Ack(b.top, len(b.covered) > 1)
	}
	for _, h := range b.due {
		_ = to.Ack(h.tag, false)
	}
	for _, h := range b.covered {
		h.sent()
	}
	for _, h := range b.due {
		h.sent()
	}
}

// stop sends every held ack, waiting for a write in progress, and
// disarms the timer; later acks are sent at once, on their own.
func (s *settler) stop() {
	s.mu.Lock()
	s.stopped = true
	s.timer.Stop()
	s.armed = false
	for s.writing {
		s.written.Wait()
	}
	batch := s.take(time.Time{})
	s.mu.Unlock()
	batch.send(s.send)
}
