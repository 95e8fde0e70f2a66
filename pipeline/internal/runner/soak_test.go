package runner_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A fault the soak test causes, and how.
type soakFault struct {
	name string
	// quiet faults wait until nothing is queued or in flight: deleting
	// what holds messages would lose them on the broker, which is not the
	// translator's doing.
	quiet bool
	do    func(s *soak)
}

var soakFaults = []soakFault{
	{"delete the output exchange", true, (*soak).deleteOutputExchange},
	{"close every connection", false, func(s *soak) {
		s.w.ctl("close_all_connections", "pulsetranslator soak test")
		s.w.redial()
	}},
	{"delete the input queue", true, (*soak).deleteInputQueue},
	{"stop and start the broker", false, (*soak).restartBroker},
}

// soak is one soak run: the stream, the world, where the publisher is.
type soak struct {
	t      *testing.T
	w      *world
	s      *stream
	probe  string
	output string
	// outputsBefore[i] is how many outputs the first i inputs give.
	outputsBefore []int
	proc          *translatorProcess
	// canaries counts the canary outputs in the probe; canaryIDs are their
	// ids (every canary is the same message).
	canaries  int
	canaryIDs map[string]bool
}

// TestFaultSoak streams corpus messages (PULSE_FAULT_MESSAGES, default
// 5,000) through the real binary while, at random moments, the output
// exchange is deleted, every connection is closed, the input queue is
// deleted (the translator declares it again), and the broker is stopped
// and started. Every expected output arrives, counted by message id, and
// the process never exits. PULSE_SOAK_SEED replays a run: the seed and
// the schedule are printed first.
func TestFaultSoak(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PULSE_SOAK_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("PULSE_SOAK_SEED=%q: %v", v, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := newWorldOnOwnNode(t)
	n := faultMessages(t)
	w.maxLength = 2 * n
	text := w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "")
	s := &soak{t: t, w: w, s: newStream(t, w.parse(text), n), output: pulse.ExchangeName(w.client, "build/normalized")}
	s.outputsBefore = make([]int, n+1)
	for i := range n {
		s.outputsBefore[i+1] = s.outputsBefore[i] + s.s.outputs[i]
	}

	// Every kind once, in a random order, plus two more at random, each at
	// a random input between a tenth and nine tenths of the stream.
	faults := slices.Clone(soakFaults)
	rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })
	faults = append(faults, soakFaults[rng.IntN(len(soakFaults))], soakFaults[rng.IntN(len(soakFaults))])
	at := make([]int, len(faults))
	for i := range at {
		at[i] = n/10 + rng.IntN(n*8/10)
	}
	slices.Sort(at)
	var schedule []string
	for i, f := range faults {
		schedule = append(schedule, fmt.Sprintf("%s at input %d", f.name, at[i]))
	}
	t.Logf("seed %d (PULSE_SOAK_SEED=%d replays it): %s", seed, seed, strings.Join(schedule, "; "))

	s.proc = w.startTranslator(text)
	s.probe = w.durableProbe()
	began := time.Now()
	next := 0
	for i := 0; i < n; {
		if next < len(faults) && i >= at[next] {
			f := faults[next]
			if f.quiet {
				s.quiesce(i)
			}
			faultAt := time.Now()
			f.do(s)
			t.Logf("%s at input %d (%s after the start), %s", f.name, i, faultAt.Sub(began).Round(time.Millisecond), time.Since(faultAt).Round(time.Millisecond))
			next++
			continue
		}
		end := min(i+200, n)
		if next < len(faults) {
			end = min(end, max(at[next], i+1))
		}
		s.publishRange(i, end)
		i = end
		select {
		case <-s.proc.done:
			t.Fatalf("the translator exited during the soak:\n%s", s.proc.logs.String())
		default:
		}
	}
	if !w.waitFor(s.probe, 10*time.Minute, func(m int) bool { return m >= s.outputsBefore[n]+s.canaries }) {
		t.Fatal("the outputs did not all arrive within 10 minutes")
	}
	time.Sleep(2 * time.Second)
	select {
	case <-s.proc.done:
		t.Fatalf("the translator exited during the soak:\n%s", s.proc.logs.String())
	default:
	}
	ids := w.drain(s.probe)
	lost, duplicates, unexpected := delivered(s.s.expected, ids, s.canaryIDs)
	t.Logf("soak: %d raw messages, %d outputs expected, %d arrived in %s: %d lost, %d duplicates, %d unexpected; %d faults; the process ran throughout",
		n, len(s.s.expected), len(ids), time.Since(began).Round(time.Second), lost, duplicates, unexpected, len(faults))
	if lost > 0 || unexpected > 0 {
		t.Errorf("%d outputs lost, %d unexpected (seed %d)", lost, unexpected, seed)
	}
}

// publishRange publishes inputs [from, to) upstream with confirms, and
// publishes them again, on a new connection, when a fault broke the
// connection first (duplicates are allowed; losses are not).
func (s *soak) publishRange(from, to int) {
	for attempt := 0; ; attempt++ {
		err := s.publishOnce(from, to)
		if err == nil {
			return
		}
		if attempt == 20 {
			s.t.Fatalf("publishing inputs %d to %d: %v", from, to, err)
		}
		// Back off: a quorum queue electing a new leader nacks for a while.
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		s.w.redial()
	}
}

func (s *soak) publishOnce(from, to int) error {
	confirms := make([]*amqp.DeferredConfirmation, 0, to-from)
	for i := from; i < to; i++ {
		dc, err := s.w.admin.PublishWithDeferredConfirm(s.w.upstream, s.s.keys[i], false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: s.s.bodies[i]})
		if err != nil {
			return err
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		select {
		case <-dc.Done():
			if !dc.Acked() {
				return fmt.Errorf("an upstream publish was not confirmed")
			}
		case <-time.After(30 * time.Second):
			return fmt.Errorf("no confirm within 30s")
		}
	}
	return nil
}

// quiesce waits until the outputs of the first published inputs have all
// arrived and the input queue is empty.
func (s *soak) quiesce(published int) {
	input := pulse.InputQueue(s.w.client, "build")
	if !s.w.waitFor(s.probe, 5*time.Minute, func(m int) bool { return m >= s.outputsBefore[published]+s.canaries }) ||
		!s.w.waitFor(input, time.Minute, func(m int) bool { return m == 0 }) {
		s.t.Fatalf("the translator did not catch up with %d inputs", published)
	}
	time.Sleep(300 * time.Millisecond)
}

// deleteOutputExchange deletes the output exchange, then sends one
// canary input: its publish finds the exchange gone, the translator
// declares it again, and the canary is published on its next attempt.
// The probe is bound again as soon as the exchange is back, before that
// attempt.
func (s *soak) deleteOutputExchange() {
	if err := s.w.admin.ExchangeDelete(s.output, false, false); err != nil {
		s.t.Fatal(err)
	}
	body, key := corpusFile(s.t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	canary := append([]byte(`{"canary": true, `), body[1:]...)
	if s.canaryIDs == nil {
		s.canaryIDs = outputIDs(s.t, s.w.parse(s.w.configText(s.w.pulseUser(), "[builtin:buildbot.yaml]", "")), key, canary)
	}
	probeHad := s.probeCount()
	s.w.publishRaw(key, canary)
	deadline := time.Now().Add(30 * time.Second)
	looker, err := s.w.dial()
	if err != nil {
		s.t.Fatal(err)
	}
	defer looker.Close()
	for {
		ch, err := looker.Channel()
		if err != nil {
			s.t.Fatal(err)
		}
		err = ch.ExchangeDeclarePassive(s.output, amqp.ExchangeTopic, true, false, false, false, nil)
		_ = ch.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the translator did not declare the output exchange again within 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := s.w.admin.QueueBind(s.probe, "build.#", s.output, false, nil); err != nil {
		s.t.Fatal(err)
	}
	// The canary's output lands in the probe on its next attempt.
	if !s.w.waitFor(s.probe, 30*time.Second, func(m int) bool { return m > probeHad }) {
		s.t.Fatal("the canary was not published within 30s of the exchange's deletion")
	}
	s.canaries++
}

func (s *soak) probeCount() int {
	q, err := s.w.inspect(s.probe)
	if err != nil {
		s.t.Fatal(err)
	}
	return q.Messages
}

// deleteInputQueue deletes the input queue; the broker cancels the
// translator's consumer, and the translator declares the queue (with its
// bindings) again and consumes it.
func (s *soak) deleteInputQueue() {
	input := pulse.InputQueue(s.w.client, "build")
	if _, err := s.w.admin.QueueDelete(input, false, false, false); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.w.consumers("build") == 0 {
		if time.Now().After(deadline) {
			s.t.Fatal("the translator did not consume a new input queue within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restartBroker stops and starts the RabbitMQ application.
func (s *soak) restartBroker() { s.w.restartBroker(time.Second) }
