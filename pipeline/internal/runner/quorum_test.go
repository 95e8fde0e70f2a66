package runner_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/deadqueue"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// queueArguments lists a queue's type and arguments as the broker holds
// them (rabbitmqctl, run as root).
func queueArguments(t *testing.T, queue string) string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-q", "list_queues", "name", "type", "arguments", "--no-table-headers").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, rest, ok := strings.Cut(line, "\t"); ok && name == queue {
			return rest
		}
	}
	t.Fatalf("the broker has no queue %s", queue)
	return ""
}

// quorumGateConfig is the world's pipeline waiting for logs in one wait
// tier, with every queue a quorum queue.
func (w *world) quorumGateConfig(tier time.Duration, extra string) string {
	w.t.Helper()
	text := w.gateConfig(w.pulseUser(), []time.Duration{tier}, time.Minute, "dead")
	return strings.Replace(text, "queue: {max_length: 1000, dead_max_length: 1000}", "queue: {max_length: 1000, dead_max_length: 1000, type: quorum"+extra+"}", 1)
}

// waitedAtLeast waits until the pipeline's messages have waited n times
// in all, and fails the test when they have not within the given time.
func waitedAtLeast(t testing.TB, rn *runner.Runner, n int64, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); rn.Stats("build").Waited.Load() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the messages waited %d times within %s; want %d", rn.Stats("build").Waited.Load(), within, n)
		}
	}
}

// TestQuorumQueues: with queue.type quorum every queue of the pipeline is
// a quorum queue; a waiting message comes back from a quorum wait queue
// (at-least-once dead-lettering) and is published; a message whose
// consumer keeps dying holding it is dead-lettered at the delivery limit,
// and the dead queue says why.
func TestQuorumQueues(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	const tier = 300 * time.Millisecond
	cfg := w.parse(w.quorumGateConfig(tier, ", delivery_limit: 2"))
	rn := start(t, cfg)

	input, dead, wait := pulse.InputQueue(w.client, "build"), pulse.DeadQueue(w.client, "build"), pulse.WaitQueue(w.client, "build", tier)
	for queue, want := range map[string][]string{
		input: {"x-delivery-limit", "2", "x-overflow", "drop-head", "x-dead-letter-exchange"},
		dead:  {"x-overflow", "drop-head"},
		wait:  {"x-dead-letter-strategy", "at-least-once", "x-overflow", "reject-publish", "x-message-ttl"},
	} {
		args := queueArguments(t, queue)
		if !strings.HasPrefix(args, "quorum") {
			t.Errorf("%s is %s, want a quorum queue", queue, args)
		}
		for _, w := range want {
			if !strings.Contains(args, w) {
				t.Errorf("%s has arguments %s; want %s among them", queue, args, w)
			}
		}
	}

	w.waitsTwiceThenPublished(rn, store, "late", "a quorum queue")
}

// waitsTwiceThenPublished publishes a build whose log is not ready, lets
// it wait twice, makes the log ready, and checks that its output is
// published, after waiting in where.
func (w *world) waitsTwiceThenPublished(rn *runner.Runner, store *artifactStore, tag, where string) {
	t := w.t
	t.Helper()
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	late := newGatedBuild(t, store, tag)
	w.publishRaw(late.key, late.body)
	waitedAtLeast(t, rn, 2, 15*time.Second)
	store.makeReady(late.logPath)
	if got := payloadOf(t, receive(t, main, "the output after waiting in "+where))["logurl"]; got != late.logURL {
		t.Errorf("logurl %v, want %s", got, late.logURL)
	}
}

// TestDeliveryLimitParks: a message whose consumer dies holding it, again
// and again, goes to the dead queue at the delivery limit (here 2) with a
// reason that says so, instead of looping. The consumer that dies is the
// test's own channel, closed without an ack, as a crash would leave it.
func TestDeliveryLimitParks(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	text := strings.Replace(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", ""), "queue: {max_length: 1000, dead_max_length: 1000}", "queue: {max_length: 1000, dead_max_length: 1000, type: quorum, delivery_limit: 2}", 1)
	cfg := w.parse(text)
	// The real command declares the topology; killed, it consumes nothing.
	w.startTranslator(text).kill()
	w.publishRaw("build.poison.1.log_uploaded", []byte(`{"poison": true}`))
	input, dead := pulse.InputQueue(w.client, "build"), pulse.DeadQueue(w.client, "build")
	// A quorum queue takes back a message from a closed channel
	// asynchronously, so an empty get does not mean the message is gone:
	// it is gone when the dead queue holds it.
	deliveries, deadline := 0, time.Now().Add(30*time.Second)
	for {
		q, err := w.inspect(dead)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d deliveries and 30 s the dead queue is still empty", deliveries)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := ch.Get(input, false)
		ch.Close() // unacked: back to the queue, one more delivery counted
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if deliveries++; deliveries > 10 {
			t.Fatal("the delivery limit did not stop the message after 10 deliveries")
		}
	}
	if deliveries != 3 {
		t.Errorf("the message was taken %d times; with delivery_limit 2 the broker gives it 3 times (the first and 2 redeliveries)", deliveries)
	}
	reader, err := deadqueue.Open(conn, cfg, "build")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	parked, err := reader.Read(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].Class != "delivery_limit" || !strings.Contains(parked[0].Reason, "queue.delivery_limit") || parked[0].SourceRoutingKey != "build.poison.1.log_uploaded" {
		t.Fatalf("the dead queue holds %+v; want the message, class delivery_limit, with a reason naming queue.delivery_limit", parked)
	}
}

// TestQueueTypeChangeIsRefused: a pipeline whose queues exist as classic
// queues does not start as quorum; the error says which queue, both types,
// and what to do.
func TestQueueTypeChangeIsRefused(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	start(t, w.config(w.pulseUser())) // declares the classic queues
	text := strings.Replace(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", ""), "queue: {max_length: 1000, dead_max_length: 1000}", "queue: {max_length: 1000, dead_max_length: 1000, type: quorum}", 1)
	rn, err := runner.New(w.parse(text), translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = rn.Run(ctx)
	if err == nil {
		t.Fatal("Run started on classic queues configured as quorum")
	}
	for _, want := range []string{"exists as a classic queue", "asks for a quorum queue", "queue.type: classic", "delete_queue", pulse.DeadQueue(w.client, "build")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "p/w@") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestOlderWaitQueueKeepsWorking: a quorum wait queue declared by an
// earlier version dead-letters through the wait exchange, and RabbitMQ
// cannot change that in place. The translator starts all the same, says
// (once) that the queue should be declared anew and how, and a build
// that waits in it comes home and is published.
func TestOlderWaitQueueKeepsWorking(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	const tier = 300 * time.Millisecond
	wait := pulse.WaitQueue(w.client, "build", tier)
	if _, err := w.admin.QueueDeclare(wait, true, false, false, false, amqp.Table{
		"x-max-length": int64(config.DefaultWaitMaxLength), "x-overflow": "reject-publish", "x-queue-type": "quorum",
		"x-message-ttl": tier.Milliseconds(), "x-dead-letter-exchange": pulse.WaitExchange(w.client, "build"),
		"x-dead-letter-routing-key": pulse.RetryKey, "x-dead-letter-strategy": "at-least-once",
	}); err != nil {
		t.Fatal(err)
	}
	rn, logs := startLogged(t, w.parse(w.quorumGateConfig(tier, "")))
	w.waitsTwiceThenPublished(rn, store, "older", "an older wait queue")
	if args := queueArguments(t, wait); !strings.Contains(args, pulse.WaitExchange(w.client, "build")) {
		t.Errorf("%s has arguments %s; want its own dead-letter exchange kept", wait, args)
	}
	if !strings.Contains(logs.String(), "declared by an earlier version") || !strings.Contains(logs.String(), wait) || !strings.Contains(logs.String(), "rabbitmqctl delete_queue") {
		t.Errorf("the log does not say that %s should be declared anew, and how:\n%s", wait, logs.String())
	}
}
