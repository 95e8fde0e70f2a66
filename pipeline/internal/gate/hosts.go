package gate

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// hosts bounds what each artifact host may cost, by its normalised name
// and port (lower case, IDNA, no trailing dot, the scheme's port when the
// URL gives none: every spelling of a host shares one group):
//
//   - at most perHost checks in flight to it;
//   - while it answers, any number of checks may wait for one of those
//     slots, within their budget; once it has had checks in flight for
//     slowAfter without answering any, at most perHost wait, and a check
//     beyond that is not sent (Skipped). So a host that stops answering
//     holds at most 2 × perHost messages, whatever else the pipeline has
//     in flight, and a healthy host's burst still waits its turn;
//   - a circuit breaker: after trip checks in a row that got no answer
//     within their budget (a timeout, a refused or reset connection, a
//     TLS failure), the host is not asked for a cooldown, which doubles
//     each time it trips again, up to maxCooldown; then one check probes
//     it while the others are still not sent. The checks waiting for its
//     slots when it trips give up at once. So a host that hangs or is
//     down costs each of its messages no more than a trip to its wait
//     tier, and costs other hosts' messages nothing.
//
// A host is forgotten once no check uses it and its breaker is closed;
// beyond maxHosts known hosts, idle ones are forgotten whatever their
// state, so that no stream of distinct host names grows the map.
type hosts struct {
	perHost     int
	trip        int
	slowAfter   time.Duration
	cooldown    time.Duration
	maxCooldown time.Duration

	mu sync.Mutex
	m  map[string]*hostState
}

// maxHosts bounds the hosts remembered while idle.
const maxHosts = 10000

// hostState is one host's slots and health.
type hostState struct {
	slots chan struct{}
	// users are the checks holding or waiting for a slot; waiting those
	// waiting; inFlight those holding one.
	users, waiting, inFlight int
	// busySince is when the host last went from no check in flight to
	// one; lastAnswer when it last answered.
	busySince, lastAnswer time.Time
	// failures counts checks in a row that got no answer; lastFailure
	// is the last one's detail.
	failures    int
	lastFailure string
	// openUntil is when the breaker lets a probe through; trips counts
	// the times in a row it opened; probing is set while a probe is out.
	openUntil time.Time
	trips     int
	probing   bool
	// opened is closed when the breaker opens, waking the waiters.
	opened chan struct{}
}

// slow reports whether the host has had checks in flight for slowAfter
// without answering any.
func (s *hostState) slow(now time.Time, slowAfter time.Duration) bool {
	return s.inFlight > 0 && now.Sub(s.busySince) > slowAfter && now.Sub(s.lastAnswer) > slowAfter
}

// skipped is the error of a check that was not sent: its host is
// failing (its breaker is open), or is slow to answer and has as many
// checks waiting as it may have in flight.
type skipped struct{ detail string }

func (s *skipped) Error() string { return s.detail }

// report is how a check that held a host's slot ended, for its breaker.
type report int

const (
	// neutral: the check tells nothing of the host's health.
	neutral report = iota
	// answered: the host answered, whatever the status.
	answered
	// unanswered: no answer (a timeout, a connection refused or reset).
	unanswered
)

func newHosts(perHost int, slowAfter, cooldown time.Duration) *hosts {
	return &hosts{perHost: perHost, trip: 5, slowAfter: slowAfter, cooldown: cooldown, maxCooldown: 8 * cooldown, m: map[string]*hostState{}}
}

// hostSlot is a check's hold on one host: its slot, once acquired, and
// whether the check is the breaker's probe.
type hostSlot struct {
	h     *hosts
	host  string
	s     *hostState
	probe bool
	// missed is set once the check was counted as unanswered, when its
	// caller's budget ended before the answer.
	missed bool
}

// acquire takes a slot of host, waiting for one until ctx ends or the
// host trips; it does not wait when the host is slow to answer and as
// many checks already wait.
func (h *hosts) acquire(ctx context.Context, host string, now time.Time) (*hostSlot, error) {
	h.mu.Lock()
	s := h.m[host]
	if s == nil {
		if len(h.m) >= maxHosts {
			h.forgetIdle()
		}
		s = &hostState{slots: make(chan struct{}, h.perHost), opened: make(chan struct{})}
		h.m[host] = s
	}
	hs := &hostSlot{h: h, host: host, s: s}
	if s.failures >= h.trip {
		switch {
		case now.Before(s.openUntil):
			err := &skipped{fmt.Sprintf("not asked: the host %s did not answer its last %d checks (last: %s); it is asked again in %s",
				host, s.failures, s.lastFailure, s.openUntil.Sub(now).Round(time.Millisecond))}
			h.mu.Unlock()
			return nil, err
		case s.probing:
			err := &skipped{fmt.Sprintf("not asked: the host %s did not answer its last %d checks (last: %s), and another check is probing it", host, s.failures, s.lastFailure)}
			h.mu.Unlock()
			return nil, err
		}
		hs.probe, s.probing = true, true
	}
	s.users++
	select {
	case s.slots <- struct{}{}:
		hs.took(now)
		h.mu.Unlock()
		return hs, nil
	default:
	}
	if s.waiting >= h.perHost && s.slow(now, h.slowAfter) {
		h.leave(hs)
		h.mu.Unlock()
		return nil, &skipped{fmt.Sprintf("not asked: the host %s has answered none of its %d checks in flight for %s, and %d more wait, as many as wait.check.per_host lets it have",
			host, h.perHost, h.slowAfter, h.perHost)}
	}
	s.waiting++
	opened := s.opened
	h.mu.Unlock()

	var waitErr error
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		waitErr = fmt.Errorf("no check slot free for %s within the budget (%s)", host, describeContext(ctx.Err()))
	case <-opened:
		waitErr = &skipped{fmt.Sprintf("not asked: the host %s stopped answering while this check waited for a slot", host)}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.waiting--
	if waitErr != nil {
		h.leave(hs)
		return nil, waitErr
	}
	hs.took(time.Now())
	return hs, nil
}

// took counts the slot a check took; h.mu is held.
func (hs *hostSlot) took(now time.Time) {
	if hs.s.inFlight == 0 {
		hs.s.busySince = now
	}
	hs.s.inFlight++
}

// miss counts the check as unanswered now, its caller's budget spent:
// a host whose checks keep missing their budget trips without waiting
// for their timeouts. A nil hs (a check between two hosts' slots, on a
// redirect) is not counted.
func (hs *hostSlot) miss(detail string) {
	if hs == nil {
		return
	}
	hs.h.mu.Lock()
	defer hs.h.mu.Unlock()
	if !hs.missed {
		hs.missed = true
		hs.h.fail(hs, detail)
	}
}

// release gives back the slot and records how the check ended.
func (hs *hostSlot) release(r report, detail string) {
	<-hs.s.slots
	h := hs.h
	h.mu.Lock()
	defer h.mu.Unlock()
	hs.s.inFlight--
	switch r {
	case answered:
		hs.s.lastAnswer = time.Now()
		hs.s.failures, hs.s.trips = 0, 0
	case unanswered:
		if !hs.missed {
			h.fail(hs, detail)
		}
	}
	h.leave(hs)
}

// fail counts one check of hs's host that got no answer, and opens the
// breaker when it is the trip-th in a row, or the probe; h.mu is held.
func (h *hosts) fail(hs *hostSlot, detail string) {
	s := hs.s
	s.failures++
	s.lastFailure = detail
	if hs.probe || s.failures == h.trip {
		s.openUntil = time.Now().Add(min(h.cooldown<<min(s.trips, 16), h.maxCooldown))
		s.trips++
		close(s.opened)
		s.opened = make(chan struct{})
	}
	if hs.probe {
		hs.probe, s.probing = false, false
	}
}

// leave ends a check's use of its host, forgetting the host once no
// check uses it and it is healthy; h.mu is held.
func (h *hosts) leave(hs *hostSlot) {
	if hs.probe {
		hs.probe, hs.s.probing = false, false
	}
	if hs.s.users--; hs.s.users == 0 && hs.s.failures == 0 && h.m[hs.host] == hs.s {
		delete(h.m, hs.host)
	}
}

// forgetIdle forgets every host no check uses; h.mu is held.
func (h *hosts) forgetIdle() {
	for host, s := range h.m {
		if s.users == 0 {
			delete(h.m, host)
		}
	}
}

// failing returns how many hosts are not asked now: their breaker is open.
func (h *hosts) failing(now time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.m {
		if s.failures >= h.trip && now.Before(s.openUntil) {
			n++
		}
	}
	return n
}
