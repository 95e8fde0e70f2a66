package runner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestQueueLimits fills the input and dead queues past their caps while no
// translator consumes, and checks the documented overflow behaviour: the
// input queue dead-letters its oldest messages into the dead queue (x-death
// reason maxlen), and the dead queue discards its oldest.
func TestQueueLimits(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	w.maxLength, w.deadMaxLength = 5, 2
	// The real command declares the topology; killed, it consumes nothing.
	w.startTranslator(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "")).kill()

	for i := range 8 {
		dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, "build.x.1.log_uploaded", false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf(`{"n": %d}`, i)),
		})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	input, err := w.inspect(pulse.InputQueue(w.client, "build"))
	if err != nil {
		t.Fatal(err)
	}
	if input.Messages != 5 {
		t.Errorf("the input queue holds %d messages, want its cap of 5", input.Messages)
	}
	// 3 overflowed into the dead queue, which keeps the newest 2.
	var parked []string
	for {
		d, ok, err := w.admin.Get(pulse.DeadQueue(w.client, "build"), true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		deaths, _ := d.Headers["x-death"].([]interface{})
		reason := ""
		if len(deaths) > 0 {
			reason = fmt.Sprint(deaths[0].(amqp.Table)["reason"])
		}
		parked = append(parked, string(d.Body)+" "+reason)
	}
	if got := strings.Join(parked, ", "); got != `{"n": 1} maxlen, {"n": 2} maxlen` {
		t.Errorf("the dead queue holds %q; want the 2 newest overflowed messages, x-death reason maxlen", got)
	}
	first, _, _ := w.admin.Get(pulse.InputQueue(w.client, "build"), true)
	if string(first.Body) != `{"n": 3}` {
		t.Errorf("the input queue's head is %s; want the oldest it kept, n 3", first.Body)
	}
}

// TestWaitQueueFull fills a wait queue to its cap: the next message that
// must wait is refused by the broker and parked with class
// wait_queue_full, rather than dropped or retried in a loop.
func TestWaitQueueFull(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	rn := start(t, w.parse(strings.Replace(text, "on_deadline: dead,", "on_deadline: dead, max_length: 2,", 1)))
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := newGatedBuild(t, store, fmt.Sprintf("full-%d", i))
		w.publishRaw(b.key, b.body)
	}
	parked := receive(t, dead, "the dead queue")
	if parked.Headers[pulse.HeaderClass] != pulse.ClassWaitQueueFull || !strings.Contains(fmt.Sprint(parked.Headers[pulse.HeaderReason]), "max_length of 2") {
		t.Errorf("parked with %v: %v", parked.Headers[pulse.HeaderClass], parked.Headers[pulse.HeaderReason])
	}
	if !strings.Contains(string(parked.Body), "/full-") {
		t.Errorf("the parked body is not one of the messages published")
	}
	q, err := w.inspect(pulse.WaitQueue(w.client, "build", time.Minute))
	if err != nil || q.Messages != 2 {
		t.Errorf("the wait queue holds %d (%v), want its cap of 2", q.Messages, err)
	}
	s := rn.Stats("build")
	for deadline := time.Now().Add(5 * time.Second); s.Parked.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // counted once its confirm is back
	}
	if s.Waited.Load() != 2 || s.Parked.Load() != 1 {
		t.Errorf("waited %d parked %d; want 2 waiting (the third refused) and 1 parked", s.Waited.Load(), s.Parked.Load())
	}
}

// TestQueuesCapBytes: the dead and wait queues are declared with a byte
// cap (queue.dead_max_bytes, wait.max_bytes), and the dead queue keeps no
// more than its bytes: of ten bodies over limits.max_input_bytes, parked
// cut to 64 KiB each, it keeps the newest that fit in 200 KB. A dead
// queue an earlier version declared without a byte cap is used as it is,
// and the log says what it lacks and how to declare it anew.
func TestQueuesCapBytes(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	deadQueue := pulse.DeadQueue(w.client, "build")
	extra := "    limits: {max_input_bytes: 1024}\n    wait: {max_bytes: 5000000}\n"
	text := strings.Replace(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", extra), "dead_max_length: 1000}", "dead_max_length: 1000, dead_max_bytes: 200000}", 1)
	rn := start(t, w.parse(text))
	if args := queueArguments(t, deadQueue); !strings.Contains(args, `{"x-max-length-bytes",200000}`) {
		t.Errorf("the dead queue's arguments: %s; want x-max-length-bytes 200000", args)
	}
	if args := queueArguments(t, pulse.WaitQueue(w.client, "build", 15*time.Second)); !strings.Contains(args, `{"x-max-length-bytes",5000000}`) {
		t.Errorf("the wait queue's arguments: %s; want x-max-length-bytes 5000000", args)
	}
	body := []byte(`{"payload": "` + strings.Repeat("x", 100<<10) + `"}`)
	for range 10 {
		w.publishRaw("build.x.1.log_uploaded", body)
	}
	for deadline := time.Now().Add(15 * time.Second); rn.Stats("build").Parked.Load() < 10; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 10 parked within 15s", rn.Stats("build").Parked.Load())
		}
	}
	time.Sleep(200 * time.Millisecond) // the last confirm is counted as it comes
	q, err := w.inspect(deadQueue)
	if err != nil {
		t.Fatal(err)
	}
	if parked := q.Messages; parked != 200000/process.MaxParkedCutBytes {
		t.Errorf("the dead queue holds %d cut copies of %d bytes; want the %d that fit in 200000 bytes", parked, process.MaxParkedCutBytes, 200000/process.MaxParkedCutBytes)
	}
}

// TestOlderDeadQueueKeepsWorking: a dead queue declared without a byte
// cap, as earlier versions did, is used as it is, with a warning.
func TestOlderDeadQueueKeepsWorking(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	deadQueue := pulse.DeadQueue(w.client, "build")
	if _, err := w.admin.QueueDeclare(deadQueue, true, false, false, false, amqp.Table{
		"x-max-length": int64(w.deadMaxLength), "x-overflow": "drop-head", "x-queue-type": "classic",
	}); err != nil {
		t.Fatal(err)
	}
	_, logs := startLogged(t, w.config(w.pulseUser()))
	w.publishRaw("build.x.1.log_uploaded", []byte("{not json"))
	if !w.waitFor(deadQueue, 15*time.Second, func(m int) bool { return m == 1 }) {
		t.Fatal("the malformed message was not parked in the older dead queue")
	}
	if l := logs.String(); !strings.Contains(l, "declared by an earlier version") || !strings.Contains(l, "x-max-length-bytes") || !strings.Contains(l, "rabbitmqctl delete_queue") {
		t.Errorf("the log does not say that %s lacks its byte cap, and how to declare it anew:\n%s", deadQueue, l)
	}
}
