package runner_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestQueueThatDoesNotAnswer: a queue whose process does not answer (here
// suspended on the broker for the test; RabbitMQ 3.10 can leave one so
// after a restart) holds back only the readings of the queues' depths.
// The log names the queue, and the other gauges stay current: a message
// held by a hanging log host shows in pulsetranslator_in_flight.
func TestQueueThatDoesNotAnswer(t *testing.T) {
	runner.SetStuckReading(t, 2*time.Second)
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	hanging := hangingHost(t)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	// The held message's check outlasts what the test looks at, and no
	// more: the runner's stop waits for it.
	text = strings.Replace(text, "check: {timeout: 2s,", "check: {timeout: 15s, budget: 12s,", 1)
	_, logs, srv := startServed(t, w.parse(text))
	dead := pulse.DeadQueue(w.client, "build")
	brokertest.SuspendQueue(t, dead, 40*time.Second)

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "a queue does not answer") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line names the queue that does not answer within 20s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "queue="+dead) {
		t.Errorf("the log does not name %s:\n%s", dead, logs.String())
	}

	held := gatedBuildAt(t, "http://"+hanging, "hang")
	w.publishRaw(held.key, held.body)
	deadline = time.Now().Add(15 * time.Second)
	for {
		_, text := get(t, srv.URL+"/metrics")
		if strings.Contains(text, `pulsetranslator_in_flight{pipeline="build"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pulsetranslator_in_flight did not show the held message within 15s while a queue did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hangingHost is the address of a host that accepts connections and never
// answers, until the test ends.
func hangingHost(t *testing.T) string {
	t.Helper()
	return brokertest.ServeTCP(t, func(net.Conn) {})
}

// TestConsumersQueueThatDoesNotAnswer: a queue of a consumer's, bound to
// the output exchange, whose process does not answer withholds the
// confirm of every output routed to it. The pipeline's rules wait for no
// artifact; after one publish timeout each time, its input waits in a
// wait queue, not in hand, and is published again when it returns (the
// answering consumers get a copy each pass), until the deadline parks it
// as unpublishable with a reason that says so; once the queue answers
// again, outputs flow.
func TestConsumersQueueThatDoesNotAnswer(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	w.tiers = []time.Duration{500 * time.Millisecond}
	text := strings.Replace(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "    wait: {tiers: [500ms], deadline: 2s}\n"), "publish_timeout: 10s", "publish_timeout: 1s", 1)
	rn, _ := startLogged(t, w.parse(text))
	output := pulse.ExchangeName(w.client, "build/normalized")
	answering := w.probe(output, "#")
	resume := w.unansweringQueue(conn, output)
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key, body)
	parked := receive(t, dead, "the dead queue")
	reason := fmt.Sprint(parked.Headers[pulse.HeaderReason])
	if parked.Headers[pulse.HeaderClass] != pulse.ClassUnpublishable || !strings.Contains(reason, "no confirm of the outputs came within the publish timeout") ||
		!strings.Contains(reason, "deadline 2s") || !strings.Contains(reason, "rabbitmqctl list_unresponsive_queues") {
		t.Errorf("parked with class %v, reason %q; want unpublishable at the deadline, without a confirm, naming the command that finds a queue that does not answer", parked.Headers[pulse.HeaderClass], reason)
	}
	passes := int(rn.Stats("build").Waited.Load()) + 1
	if passes < 2 {
		t.Errorf("%d passes; want the message to have waited, not been retried in hand", passes)
	}
	copies := 0
	for drained := false; !drained; {
		select {
		case <-answering:
			copies++
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}
	if copies != passes {
		t.Errorf("the answering consumer got %d copies; want one per pass, %d", copies, passes)
	}

	resume()
	body2, key2 := corpusFile(t, "mozilla-central/build.mozilla-central-win32.343.log_uploaded")
	w.publishRaw(key2, body2)
	if d := receive(t, answering, "the output exchange, once the queue answers"); !strings.HasPrefix(d.RoutingKey, "build.mozilla-central.win32") {
		t.Errorf("once the queue answers: routing key %q", d.RoutingKey)
	}
	for deadline := time.Now().Add(10 * time.Second); rn.Stats("build").Published.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := rn.Stats("build").Published.Load(); n != 1 {
		t.Errorf("published %d once the queue answers; want 1", n)
	}
}

// TestUnansweringConsumerQueueHoldsNothingUp: as above, a consumer's
// queue bound to the output exchange does not answer; the pipeline waits
// for logs, as the embedded default does, and holds 8 messages at a time
// (2 consumers, prefetch 4). Each output is confirmed by every queue but that one; the
// translator gives up waiting for the confirm after publish_timeout
// (1 s), and the message waits in a wait queue instead of in hand: the
// answering consumer gets all 30 outputs within a few publish timeouts,
// not 8 and then a copy of each per attempt. Once the queue answers
// again, the waiting messages are published and confirmed: nothing is
// parked.
func TestUnansweringConsumerQueueHoldsNothingUp(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store, text := w.readyLogsConfig()
	text = strings.Replace(text, "publish_timeout: 10s", "publish_timeout: 1s", 1)
	text = strings.Replace(text, "consumers: 2", "consumers: 2\n    prefetch: 4", 1)
	rn, logs := startLogged(t, w.parse(text))
	output := pulse.ExchangeName(w.client, "build/normalized")
	answering := w.probe(output, "#")
	resume := w.unansweringQueue(conn, output)

	const inputs = 30
	began := w.publishGated(store, "u", inputs)
	collectAll(t, answering, inputs, 20*time.Second, began, "the answering consumer", "an unconfirmed output must not hold up the others")
	if !strings.Contains(logs.String(), "no confirm of the outputs came within the publish timeout") {
		t.Errorf("the log does not say the outputs were not confirmed:\n%s", logs.String())
	}

	resume()
	stats := rn.Stats("build")
	for deadline := time.Now().Add(30 * time.Second); stats.Published.Load() < inputs && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if n := stats.Published.Load(); n < inputs || stats.Parked.Load() != 0 {
		t.Errorf("%d outputs confirmed, %d parked, within 30s of the queue answering again; want all %d confirmed, none parked", n, stats.Parked.Load(), inputs)
	}
}

// unansweringQueue binds to output a consumer's queue whose process does
// not answer (suspended on the broker) until resume is called, or for a
// minute at most.
func (w *world) unansweringQueue(conn *amqp.Connection, output string) (resume func()) {
	w.t.Helper()
	stuck := "queue/" + w.client + "-consumer/stuck"
	if _, err := w.admin.QueueDeclare(stuck, false, false, false, false, nil); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { // after the queue is resumed (cleanups run last first)
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(stuck, false, false, false)
		}
	})
	if err := w.admin.QueueBind(stuck, "build.#", output, false, nil); err != nil {
		w.t.Fatal(err)
	}
	return brokertest.SuspendQueue(w.t, stuck, time.Minute)
}

// TestInputQueueThatDoesNotAnswerIsNotReady: while the input queue does
// not answer (suspended here; a quorum queue without a leader answers
// nothing either, while the connection to its node stays up), /readyz
// says 503 and names the queue and what to look at; once it answers, 200
// again.
func TestInputQueueThatDoesNotAnswerIsNotReady(t *testing.T) {
	runner.SetStuckReading(t, 2*time.Second)
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	_, _, srv := startServed(t, w.config(w.pulseUser()))
	readyz := func() (int, string) { return get(t, srv.URL+"/readyz") }
	awaitReadyz := func(want int, what string) string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code, body := readyz()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz %d %q 30s %s; want %d", code, body, what, want)
			}
		}
	}
	awaitReadyz(http.StatusOK, "after the start")
	input := pulse.InputQueue(w.client, "build")
	resume := brokertest.SuspendQueue(t, input, time.Minute)
	body := awaitReadyz(http.StatusServiceUnavailable, "while the input queue does not answer")
	if !strings.Contains(body, input+" has not answered for") || !strings.Contains(body, "list_unresponsive_queues") {
		t.Errorf("/readyz says %q; want the queue named and what to look at", body)
	}
	resume()
	awaitReadyz(http.StatusOK, "once the input queue answers again")
}
