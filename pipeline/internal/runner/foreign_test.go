package runner_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// foreignUser connects as another Pulse client, with its own Pulse
// permissions: it may read every exchange/…, so bind its queues to any
// of them, but not read the translator's queue/<client>/… names.
func (w *world) foreignUser() (name string, conn *amqp.Connection) {
	w.t.Helper()
	name = w.client + "-other"
	conn, err := amqp.Dial(brokertest.PulseUser(w.t, name))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { conn.Close() })
	return name, conn
}

// channel opens a channel on conn.
func channel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// refuseEverything declares, as the foreign user, a queue that refuses
// every message (max-length 0, reject-publish) and binds it to exchange
// with each key: were the translator to publish there, the broker would
// nack it.
func refuseEverything(t *testing.T, ch *amqp.Channel, queue, exchange string, keys ...string) {
	t.Helper()
	brokertest.DeleteQueueAtEnd(t, queue)
	if _, err := ch.QueueDeclare(queue, false, true, false, false, amqp.Table{"x-max-length": int64(0), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		if err := ch.QueueBind(queue, key, exchange, false, nil); err != nil {
			t.Fatalf("the foreign user binds %s to %s with %q: %v", queue, exchange, key, err)
		}
	}
}

// TestForeignQueuesCannotStallWaitingOrParking: another Pulse client
// binds queues that refuse everything (reject-publish at length 0) to
// the pipeline's wait exchange, with every tier's key and the retry key,
// and to its dead exchange, as Pulse lets any client do with any
// exchange/… name. The translator publishes its waiting and parked copies
// through exchanges that only its own client may bind to, so none of its
// publishes is nacked: each of 20 waiting messages waits once, in its
// own wait queue, without a publish tried again, and one malformed
// message is parked once. The foreign client cannot bind to those
// exchanges.
func TestForeignQueuesCannotStallWaitingOrParking(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	newArtifactStore(t) // no log is ready: every build waits
	rn, _ := startLogged(t, w.parse(w.gateConfig(w.pulseUser(), []time.Duration{20 * time.Second, 40 * time.Second}, time.Minute, "dead")))

	other, foreign := w.foreignUser()
	ch := channel(t, foreign)
	wait := pulse.WaitExchange(w.client, "build")
	refuseEverything(t, ch, "queue/"+other+"/on-wait", wait, "20s", "40s", pulse.RetryKey)
	refuseEverything(t, ch, "queue/"+other+"/on-dead", pulse.DeadExchange(w.client, "build"), "")

	store := newArtifactStore(t)
	w.publishGated(store, "f", 20)
	w.publishRaw("build.mozilla-central-linux64.1.log_uploaded", []byte("{not json"))
	firstTier := pulse.WaitQueue(w.client, "build", 20*time.Second)
	if !w.waitFor(firstTier, 15*time.Second, func(m int) bool { return m >= 20 }) {
		t.Fatalf("the 20 builds did not all reach %s within 15s: a foreign queue on the wait exchange held them up", firstTier)
	}
	if !w.waitFor(pulse.DeadQueue(w.client, "build"), 15*time.Second, func(m int) bool { return m >= 1 }) {
		t.Fatal("the malformed message was not parked within 15s: a foreign queue on the dead exchange held it up")
	}
	time.Sleep(time.Second) // for copies that would follow
	stats := rn.Stats("build")
	waiting, _ := w.inspect(firstTier)
	parked, _ := w.inspect(pulse.DeadQueue(w.client, "build"))
	if waiting.Messages != 20 || parked.Messages != 1 || stats.Retried.Load() != 0 {
		t.Errorf("%d copies wait in %s, %d in the dead queue, %d publishes tried again; want 20, 1 and none: a foreign queue must not make the translator retry or copy its own publishes",
			waiting.Messages, firstTier, parked.Messages, stats.Retried.Load())
	}

	// The exchanges the translator publishes its copies through are not
	// the foreign client's to read.
	for _, private := range []string{pulse.HoldExchange(w.client, "build"), pulse.ParkExchange(w.client, "build")} {
		err := channel(t, foreign).QueueBind("queue/"+other+"/on-wait", "20s", private, false, nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused || !strings.Contains(ae.Reason, private) {
			t.Errorf("the foreign user binds to %s: %v; want access refused", private, err)
		}
	}
}

// deadLetterBacklog is how many dead-lettered messages a quorum queue
// keeps to send again (RabbitMQ's at-least-once dead-lettering), as the
// broker says (rabbitmqctl, run as root).
func deadLetterBacklog(t *testing.T, queue string) string {
	t.Helper()
	expr := `{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + queue + `">>)), proplists:get_value(messages_dlx, rabbit_amqqueue:info(Q, [messages_dlx])).`
	out, err := exec.Command("rabbitmqctl", "-q", "eval", expr).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl eval (messages_dlx of %s): %v\n%s", queue, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestForeignQueueKeepsNoQuorumWaiters: with quorum queues, whose
// dead-lettering is at least once, another Pulse client's queue that
// refuses everything, bound to the wait exchange with the retry key,
// would make RabbitMQ keep a copy of every returning waiter in the wait
// queue, trying it again at that queue forever. The wait queues
// dead-letter through the private hold exchange instead: 5 builds wait
// 15 times in all, come home and are published, and the wait queue keeps
// no copy.
func TestForeignQueueKeepsNoQuorumWaiters(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	const tier = 300 * time.Millisecond
	rn := start(t, w.parse(w.quorumGateConfig(tier, "")))
	other, foreign := w.foreignUser()
	refuseEverything(t, channel(t, foreign), "queue/"+other+"/on-retry", pulse.WaitExchange(w.client, "build"), pulse.RetryKey, pulse.TierName(tier))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")

	builds := make([]gatedBuild, 5)
	for i := range builds {
		builds[i] = newGatedBuild(t, store, fmt.Sprintf("q%d", i))
		w.publishRaw(builds[i].key, builds[i].body)
	}
	waitedAtLeast(t, rn, 15, 20*time.Second)
	for _, b := range builds {
		store.makeReady(b.logPath)
	}
	for range builds {
		receive(t, main, "the output of a build that waited")
	}
	wait := pulse.WaitQueue(w.client, "build", tier)
	if kept := deadLetterBacklog(t, wait); kept != "0" {
		t.Errorf("%s keeps %s dead-lettered waiters to send again; want none: another client's queue on the wait exchange must not make the broker keep them", wait, kept)
	}
}
