package runner_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/deadqueue"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	amqp "github.com/rabbitmq/amqp091-go"
)

// openDead opens the pipeline's dead queue as cfg's user, as
// "pulsetranslator dead" does; the reader and its connection close when
// the test ends, unless closed before.
func openDead(t *testing.T, cfg *config.Config) *deadqueue.Reader {
	t.Helper()
	conn, err := runner.Dial(cfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dead, err := deadqueue.Open(conn, cfg, "build")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	return dead
}

// TestDeadReplay parks a message its rules cannot translate (a platform
// missing from the platforms table), adds the platform to the rule file,
// restarts the pipeline, and replays the dead queue: the message is
// published, and the dead queue is empty. All as the Pulse user.
func TestDeadReplay(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	shipped, err := rules.Builtin.ReadFile("buildbot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ruleFile := filepath.Join(t.TempDir(), "buildbot.yaml")
	if err := os.WriteFile(ruleFile, shipped, 0o644); err != nil {
		t.Fatal(err)
	}
	text := w.configText(w.pulseUser(), "["+ruleFile+"]", "")
	key := "build.mozilla-central-plan9.3.log_uploaded"
	body := []byte(`{"payload": {"build": {"properties": [["branch", "mozilla-central", "x"], ["platform", "plan9", "x"], ["buildername", "Plan9 mozilla-central build", "x"], ["packageUrl", "http://a/b.tar.bz2", "x"]]}}, "_meta": {"exchange": "exchange/build/", "routing_key": "` + key + `"}}`)

	first, err := runner.New(w.parse(text), translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilStopped(t, first)
	w.publishRaw(key, body)
	if !w.waitFor(pulse.DeadQueue(w.client, "build"), 15*time.Second, func(m int) bool { return m == 1 }) {
		t.Fatal("the plan9 message was not parked")
	}
	stop()

	// The fix: the platform joins the table, and the pipeline restarts.
	fixed := strings.Replace(string(shipped), "  platforms:\n", "  platforms:\n    plan9: [plan9]\n", 1)
	if fixed == string(shipped) {
		t.Fatal("the shipped rule file has no platforms table to add to")
	}
	if err := os.WriteFile(ruleFile, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := w.parse(text)

	// A replay before this version's pipeline ran (its hold exchange, the
	// way in, missing) says what to do, and leaves the message parked.
	if err := w.admin.ExchangeDelete(pulse.HoldExchange(w.client, "build"), false, false); err != nil {
		t.Fatal(err)
	}
	earlyDead := openDead(t, cfg)
	if parked, err := earlyDead.Read(10); err != nil || len(parked) != 1 {
		t.Fatalf("read %d parked: %v", len(parked), err)
	} else if n, err := earlyDead.Replay(context.Background(), parked); n != 0 || err == nil || !strings.Contains(err.Error(), "run the pipeline once") {
		t.Errorf("replay without the hold exchange: %d replayed, error %v; want none, and an error that says to run the pipeline once", n, err)
	}
	earlyDead.Close()

	start(t, cfg)
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")

	dead := openDead(t, cfg)
	parked, err := dead.Read(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].Class != "bad_platform" || !strings.Contains(parked[0].Reason, "plan9") ||
		parked[0].SourceRoutingKey != key || parked[0].SourceExchange != w.upstream {
		t.Fatalf("the dead queue holds %+v; want the plan9 message, class bad_platform, from %s with %s", parked, w.upstream, key)
	}
	if n, err := dead.Replay(context.Background(), parked); err != nil || n != 1 {
		t.Fatalf("replayed %d: %v", n, err)
	}
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, main, "the output exchange after the replay"); !strings.HasPrefix(d.RoutingKey, "build.mozilla-central.plan9.") {
		t.Errorf("routing key %q", d.RoutingKey)
	}
	if q, err := w.inspect(pulse.DeadQueue(w.client, "build")); err != nil || q.Messages != 0 {
		t.Errorf("the dead queue holds %d after the replay (%v), want 0", q.Messages, err)
	}
}

// TestDeadListOfAQueueThatDoesNotAnswer: the dead queue's process does
// not answer (suspended on the broker, as RabbitMQ can leave a queue).
// "pulsetranslator dead list --timeout 1s" ends within seconds, exit 1,
// with an error naming the queue and how to find such queues, and does
// not wait for the queue to close its connection.
func TestDeadListOfAQueueThatDoesNotAnswer(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	text := w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "")
	start(t, w.parse(text))
	deadQueue := pulse.DeadQueue(w.client, "build")
	if !w.waitFor(deadQueue, 15*time.Second, func(m int) bool { return m == 0 }) {
		t.Fatal("the pipeline did not declare its dead queue")
	}
	brokertest.SuspendQueue(t, deadQueue, time.Minute)
	configFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	type exit struct {
		code           int
		stdout, stderr string
	}
	done := make(chan exit, 1)
	began := time.Now()
	go func() {
		var stdout, stderr bytes.Buffer
		code := cli.Main([]string{"dead", "list", "--config", configFile, "--timeout", "1s"}, &stdout, &stderr)
		done <- exit{code, stdout.String(), stderr.String()}
	}()
	select {
	case e := <-done:
		took := time.Since(began)
		if e.code != 1 || !strings.Contains(e.stderr, deadQueue) || !strings.Contains(e.stderr, "did not answer within 1s") || !strings.Contains(e.stderr, "list_unresponsive_queues") {
			t.Errorf("dead list of a queue that does not answer: exit %d, stderr %q; want 1, naming %s, the bound and how to find such queues", e.code, e.stderr, deadQueue)
		}
		if u, err := url.Parse(w.pulseUser()); err == nil {
			if pw, _ := u.User.Password(); pw == "" || strings.Contains(e.stderr, pw) {
				t.Errorf("dead list shows the password (or the test user has none): %q", e.stderr)
			}
		}
		t.Logf("dead list gave up after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(e.stderr))
	case <-time.After(20 * time.Second):
		t.Fatal("dead list of a queue that does not answer ran over 20s; want it to give up after its 1s timeout and a bounded close")
	}
}

// TestReplayedMessageKeepsItsOrigin: a replayed message comes back through
// the pipeline's hold exchange, and is taken for what it was: a message
// from its upstream exchange with its routing key, not from the hold
// exchange with the key "retry". A malformed one, parked again, says so.
func TestReplayedMessageKeepsItsOrigin(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	cfg := w.config(w.pulseUser())
	start(t, cfg)
	deadQueue := pulse.DeadQueue(w.client, "build")
	key := "build.mozilla-central-linux64.7.log_uploaded"
	w.publishRaw(key, []byte("{not json"))
	if !w.waitFor(deadQueue, 15*time.Second, func(m int) bool { return m == 1 }) {
		t.Fatal("the malformed message was not parked")
	}
	dead := openDead(t, cfg)
	parked, err := dead.Read(10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("read %d parked: %v", len(parked), err)
	}
	if n, err := dead.Replay(context.Background(), parked); err != nil || n != 1 {
		t.Fatalf("replayed %d: %v", n, err)
	}
	dead.Close()
	again, err := w.admin.Consume(deadQueue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := receive(t, again, "the dead queue, after the replay")
	if d.Headers[pulse.HeaderOriginExchange] != w.upstream || d.Headers[pulse.HeaderOriginRoutingKey] != key {
		t.Errorf("parked again from %v with %v; want from %s with %s, where it first came from", d.Headers[pulse.HeaderOriginExchange], d.Headers[pulse.HeaderOriginRoutingKey], w.upstream, key)
	}
}

// TestForgedXDeathIsNotBelieved: upstream publishes a malformed message
// carrying an x-death entry for the pipeline's input queue that names
// another exchange, another routing key and a time in 2001, then
// overflows the input queue while no translator consumes, so that the
// broker dead-letters it and merges its own entry into the forged one.
// dead list shows only the exchange the pipeline binds for the message's
// routing key, and no time; after dead replay, the runner parks it again
// as coming from that exchange, never from the forged one.
func TestForgedXDeathIsNotBelieved(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	w.maxLength = 3
	cfg := w.config(w.pulseUser())
	rn, err := runner.New(cfg, translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilStopped(t, rn)() // declares the topology, then consumes no more
	input, deadQueue := pulse.InputQueue(w.client, "build"), pulse.DeadQueue(w.client, "build")
	const forged = "exchange/someone-else/secret"
	key := "build.mozilla-central-linux64.7.log_uploaded"
	err = w.admin.Publish(w.upstream, key, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte("{not json"),
		Headers: amqp.Table{"x-death": []interface{}{amqp.Table{
			"queue": input, "reason": "maxlen", "exchange": forged, "routing-keys": []interface{}{"forged.key"},
			"time": time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), "count": int64(1),
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	filler, fillerKey := corpusFile(t, gatedBuildFile)
	for range w.maxLength {
		w.publishRaw(fillerKey, filler)
	}
	if !w.waitFor(deadQueue, 15*time.Second, func(m int) bool { return m == 1 }) {
		t.Fatal("the overflowed message did not reach the dead queue")
	}
	dead := openDead(t, cfg)
	parked, err := dead.Read(10)
	if err != nil || len(parked) != 1 {
		t.Fatalf("read %d parked: %v", len(parked), err)
	}
	p := parked[0]
	t.Logf("x-death as the dead queue holds it: %v", p.Delivery.Headers["x-death"])
	if p.SourceExchange != w.upstream || p.SourceRoutingKey != key || !p.ParkedAt.IsZero() || p.Class != "maxlen" {
		t.Errorf("dead list shows %s %s at %s (%s); want %s %s at no time, class maxlen", p.SourceExchange, p.SourceRoutingKey, p.ParkedAt, p.Class, w.upstream, key)
	}
	if _, err := w.admin.QueuePurge(input, false); err != nil {
		t.Fatal(err)
	}
	if n, err := dead.Replay(context.Background(), parked); err != nil || n != 1 {
		t.Fatalf("replayed %d: %v", n, err)
	}
	dead.Close()
	start(t, cfg)
	again, err := w.admin.Consume(deadQueue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := receive(t, again, "the dead queue, after the replay")
	if d.Headers[pulse.HeaderOriginExchange] != w.upstream || d.Headers[pulse.HeaderOriginRoutingKey] != key {
		t.Errorf("parked again from %v with %v; want from %s with %s", d.Headers[pulse.HeaderOriginExchange], d.Headers[pulse.HeaderOriginRoutingKey], w.upstream, key)
	}
}
