package runner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// refusingQueue binds to the output exchange a queue that holds at most
// maxLength messages and refuses the rest (x-overflow reject-publish), as
// a consumer may declare its own queue: the broker then nacks every
// output routed to it while it is full.
func (w *world) refusingQueue(maxLength int64) string {
	w.t.Helper()
	name := "queue/" + w.client + "/refusing"
	if len(w.nodes) == 0 {
		brokertest.DeleteQueueAtEnd(w.t, name)
	}
	if _, err := w.admin.QueueDeclare(name, false, true, false, false, amqp.Table{"x-max-length": maxLength, "x-overflow": "reject-publish"}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.admin.QueueBind(name, "#", pulse.ExchangeName(w.client, "build/normalized"), false, nil); err != nil {
		w.t.Fatal(err)
	}
	return name
}

// readyLogsConfig returns an artifact store whose every log is ready and
// the world's pipeline with the buildbot wait rule checking it, waits of
// 1 s then 2 s, and a deadline of a minute.
func (w *world) readyLogsConfig() (*artifactStore, string) {
	w.t.Helper()
	store := newArtifactStore(w.t)
	store.all.Store(true)
	return store, w.gateConfig(w.pulseUser(), []time.Duration{time.Second, 2 * time.Second}, time.Minute, "dead")
}

// publishGated publishes n distinct gated builds upstream, their logs in
// store, and returns when it began.
func (w *world) publishGated(store *artifactStore, tag string, n int) time.Time {
	w.t.Helper()
	builds := make([]gatedBuild, n)
	for i := range builds {
		builds[i] = newGatedBuild(w.t, store, fmt.Sprintf("%s%d", tag, i))
	}
	began := time.Now()
	if err := w.publishMany(builds); err != nil {
		w.t.Fatal(err)
	}
	return began
}

// collect counts the deliveries of each message id that arrive on
// deliveries until want distinct ids arrived or within has passed.
func collect(deliveries <-chan amqp.Delivery, copies map[string]int, want int, within time.Duration) {
	for deadline := time.After(within); len(copies) < want; {
		select {
		case d := <-deliveries:
			copies[d.MessageId]++
		case <-deadline:
			return
		}
	}
}

// collectAll collects from deliveries, as collect does, until want
// distinct outputs arrived, and fails the test when they do not within
// the given time: who got how many, and why all were due. It logs how
// long they took since began.
func collectAll(t *testing.T, deliveries <-chan amqp.Delivery, want int, within time.Duration, began time.Time, who, why string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	collect(deliveries, seen, want, within)
	if len(seen) != want {
		t.Fatalf("%s got %d of %d outputs within %s; want all: %s", who, len(seen), want, within, why)
	}
	t.Logf("%s got all %d outputs in %s", who, want, time.Since(began).Round(time.Millisecond))
	return seen
}

// TestFullConsumerQueueHoldsNothingUp: a consumer's queue bound to the
// output exchange is full and refuses new messages (reject-publish), so
// the broker nacks every output, though every other queue takes it. The
// translator holds 8 messages at a time (2 consumers, prefetch 4). Were
// a refused output retried in hand, those 8 would hold up the stream for
// every consumer; instead each refused message waits in a wait queue:
// the other consumers get all 60 outputs at once, a copy per pass, and
// the full queue's consumer gets every one once it has room again,
// before the deadline. Nothing is parked.
func TestFullConsumerQueueHoldsNothingUp(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store, text := w.readyLogsConfig()
	text = strings.Replace(text, "consumers: 2", "consumers: 2\n    prefetch: 4", 1)
	rn, logs := startLogged(t, w.parse(text))
	full := w.refusingQueue(10)
	others := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")

	const inputs = 60
	began := w.publishGated(store, "b", inputs)
	seen := collectAll(t, others, inputs, 20*time.Second, began, "another consumer", "a refused output must not hold up the others")
	if !strings.Contains(logs.String(), "a queue bound to the output exchange refused the outputs") {
		t.Errorf("the log does not say a queue bound to the output exchange refused the outputs:\n%s", logs.String())
	}

	// The refusing consumer catches up: what it refused reaches it when
	// the waiting messages come back.
	deliveries, err := w.admin.Consume(full, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	collect(deliveries, got, inputs, 30*time.Second)
	if len(got) != inputs {
		t.Errorf("the consumer whose queue was full got %d of %d outputs within 30s of reading it again; want all, before the deadline", len(got), inputs)
	}
	collect(others, seen, inputs+1, time.Second)
	most, total := 0, 0
	for _, n := range seen {
		most, total = max(most, n), total+n
	}
	stats := rn.Stats("build")
	t.Logf("the other consumer got %d copies of %d outputs (at most %d of one); %d passes through a wait queue", total, inputs, most, stats.Waited.Load())
	if most > 10 {
		t.Errorf("the other consumer got %d copies of one output; want one per pass through a wait queue (a few)", most)
	}
	if stats.Parked.Load() != 0 {
		t.Errorf("parked %d; want none: the refusing queue had room again before the deadline", stats.Parked.Load())
	}
	if lines := strings.Count(logs.String(), "\n"); lines > 20 {
		t.Errorf("%d log lines for %d refused outputs; want them throttled:\n%s", lines, inputs, logs.String())
	}
}

// TestRefusedWithoutWaitRulesHoldsNothingUp: as above, but the pipeline's
// rules wait for no artifact and its config has no wait section, like
// deploy/config.hgpushes.example.yaml. Its refused messages wait in the
// default wait queues all the same: the other consumers get all 60
// outputs at once, the 60 inputs wait in the first tier's queue, not in
// hand, and the full queue's consumer gets every output once they
// return (after the first tier, 15 s).
func TestRefusedWithoutWaitRulesHoldsNothingUp(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	text := strings.Replace(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", ""), "consumers: 2", "consumers: 2\n    prefetch: 4", 1)
	rn, logs := startLogged(t, w.parse(text))
	full := w.refusingQueue(10)
	others := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")

	const inputs = 60
	store := newArtifactStore(t)
	began := w.publishGated(store, "p", inputs)
	collectAll(t, others, inputs, 20*time.Second, began, "another consumer", "a pipeline without wait rules must not retry refused outputs in hand either")
	firstTier := pulse.WaitQueue(w.client, "build", config.DefaultWaitTiers[0])
	var waiting int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		q, err := w.inspect(firstTier)
		if err != nil {
			t.Fatalf("the default wait queue %s: %v", firstTier, err)
		}
		if waiting = q.Messages; waiting >= inputs-10 || time.Now().After(deadline) {
			break
		}
	}
	// The refusing queue took its first 10 outputs: their inputs did not
	// wait.
	if waiting != inputs-10 {
		t.Errorf("%d messages wait in %s; want the %d whose outputs the full queue refused", waiting, firstTier, inputs-10)
	}

	deliveries, err := w.admin.Consume(full, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	collect(deliveries, got, inputs, 45*time.Second)
	if len(got) != inputs {
		t.Errorf("the consumer whose queue was full got %d of %d outputs within 45s of reading it again; want all, after the first wait tier", len(got), inputs)
	}
	if n := rn.Stats("build").Parked.Load(); n != 0 {
		t.Errorf("parked %d; want none", n)
	}
	if rn.Checks("build") != nil {
		t.Error("a pipeline whose rules wait for nothing reports artifact checks")
	}
	if lines := strings.Count(logs.String(), "\n"); lines > 20 {
		t.Errorf("%d log lines for %d refused outputs; want them throttled:\n%s", lines, inputs, logs.String())
	}
}

// TestRefusedUntilDeadlineIsParked: a consumer's queue refuses every
// output for good (max-length 0, reject-publish). The message waits and
// is published again, a copy to the other consumers each time, until its
// deadline; then it is parked as unpublishable, with a reason that says
// what refused it and what to do. Each refusal is counted in
// pulsetranslator_outputs_refused_total.
func TestRefusedUntilDeadlineIsParked(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	store.all.Store(true)
	rn, _, srv := startServed(t, w.parse(w.gateConfig(w.pulseUser(), []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}, 2*time.Second, "dead")))
	w.refusingQueue(0)
	others := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := newGatedBuild(t, store, "refused")
	w.publishRaw(b.key, b.body)
	parked := receive(t, dead, "the dead queue")
	reason := fmt.Sprint(parked.Headers[pulse.HeaderReason])
	for _, want := range []string{"refused the outputs (nack)", "reject-publish", "deadline 2s", "rabbitmqctl list_queues", "dead replay"} {
		if !strings.Contains(reason, want) {
			t.Errorf("parked reason %q lacks %q", reason, want)
		}
	}
	if parked.Headers[pulse.HeaderClass] != pulse.ClassUnpublishable || parked.RoutingKey != b.key || string(parked.Body) != string(b.body) {
		t.Errorf("parked with class %v, key %q; want %s, the original key and body", parked.Headers[pulse.HeaderClass], parked.RoutingKey, pulse.ClassUnpublishable)
	}
	copies := map[string]int{}
	collect(others, copies, 2, 500*time.Millisecond)
	stats := rn.Stats("build")
	if len(copies) != 1 || stats.Waited.Load() < 2 {
		t.Errorf("the other consumer got %v; the message waited %d times; want copies of one output, a copy per pass, at least 2 waits", copies, stats.Waited.Load())
	}
	for _, n := range copies {
		if int64(n) != stats.Waited.Load()+1 {
			t.Errorf("the other consumer got %d copies for %d waits; want one per pass: the first and one after each wait", n, stats.Waited.Load())
		}
	}
	// Every pass was refused, the last one too: the metrics, /api/status
	// and the live page count them.
	passes := stats.Waited.Load() + 1
	want := fmt.Sprintf(`pulsetranslator_outputs_refused_total{cause="nack",pipeline="build"} %d`, passes)
	if _, text := get(t, srv.URL+"/metrics"); !strings.Contains(text, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if status := statusOf(t, srv.URL); !strings.Contains(status, fmt.Sprintf(`"refused":%d`, passes)) {
		t.Errorf("/api/status lacks \"refused\":%d: %.400s", passes, status)
	}
	shown := fmt.Sprintf(`data-counter="refused"><div class="value">%d</div>`, passes)
	if dom := string(headless(t, chromium(t), srv.URL+"/", 2*time.Second, "--dump-dom")); !strings.Contains(dom, shown) {
		t.Errorf("the live page does not show %d outputs refused (%s)", passes, shown)
	}
}
