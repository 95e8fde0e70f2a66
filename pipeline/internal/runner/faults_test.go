package runner_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The fault tests put a real stream through the real command and break
// something part-way: they count every output by message id against what
// the processor says the inputs must give, so a lost output fails them and
// duplicates (allowed by at-least-once) are reported.

// faultMessages is the number of raw messages a fault test publishes:
// 5,000 (some 15,000 outputs), enough for the fault to land mid-stream
// with thousands in flight and queued; PULSE_FAULT_MESSAGES overrides it
// (20,000 for the figures of docs/cluster.md).
func faultMessages(t *testing.T) int {
	if v := os.Getenv("PULSE_FAULT_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PULSE_FAULT_MESSAGES=%q is not a count", v)
		}
		return n
	}
	return 5000
}

// stream is n distinct raw messages cycled from the whole corpus (builds,
// tests, repacks, refusals, a drop), each made distinct by an extra field
// the translator ignores, and the output ids they must give.
type stream struct {
	keys     []string
	bodies   [][]byte
	expected map[string]bool
	// outputs counts each input's outputs.
	outputs []int
}

func newStream(t *testing.T, cfg *config.Config, n int) *stream {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot", "*", "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("corpus: %v", err)
	}
	proc := processorOf(t, cfg)
	s := &stream{expected: map[string]bool{}}
	for i := range n {
		rel, _ := filepath.Rel(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot"), paths[i%len(paths)])
		body, key := corpusFile(t, rel)
		body = append([]byte(fmt.Sprintf(`{"copy": %d, `, i)), body[1:]...)
		msg, err := process.Decode(cfg.Pipelines[0].Bindings[0].Exchange, key, nil, body, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		outputs := 0
		if outcome, err := proc.Process(msg); err == nil {
			for _, r := range outcome.Published {
				s.expected[r.ID] = true
			}
			outputs = len(outcome.Published)
		}
		s.outputs = append(s.outputs, outputs)
		s.keys = append(s.keys, key)
		s.bodies = append(s.bodies, body)
	}
	return s
}

// processorOf is the processor of cfg's first pipeline, with the
// registered plugins: what says which outputs the inputs must give.
func processorOf(t *testing.T, cfg *config.Config) *process.Processor {
	t.Helper()
	shipped, err := process.Ship(translator.Default)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := process.NewProcessor(cfg.Pipelines[0], translator.Default, shipped)
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// delivered compares the outputs that arrived (counted by id) with those
// expected; ids in skip (canaries) are neither expected nor duplicates.
func delivered(expected map[string]bool, arrived map[string]int, skip map[string]bool) (lost, duplicates, unexpected int) {
	for id := range expected {
		if arrived[id] == 0 {
			lost++
		}
	}
	for id, count := range arrived {
		switch {
		case skip[id]:
			continue
		case !expected[id]:
			unexpected++
		}
		duplicates += count - 1
	}
	return lost, duplicates, unexpected
}

// outputIDs are the ids of the outputs of one raw message.
func outputIDs(t *testing.T, cfg *config.Config, key string, body []byte) map[string]bool {
	t.Helper()
	_, outcome, err := processorOf(t, cfg).ProcessBody(cfg.Pipelines[0].Bindings[0].Exchange, key, nil, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range outcome.Published {
		ids[r.ID] = true
	}
	return ids
}

// publish sends the stream upstream with confirms, 256 outstanding.
func (s *stream) publish(w *world) error {
	builds := make([]gatedBuild, len(s.bodies))
	for i := range builds {
		builds[i] = gatedBuild{body: s.bodies[i], key: s.keys[i]}
	}
	return w.publishMany(builds)
}

// durableProbe declares queue/<client>/probe, durable, bound to the output
// exchange: unlike an exclusive probe it survives the broker's restart. It
// is a quorum queue when w.quorumProbe says so, to survive a node's loss.
func (w *world) durableProbe() string {
	w.t.Helper()
	name := "queue/" + w.client + "/probe"
	queueType := "classic"
	if w.quorumProbe {
		queueType = "quorum"
	}
	if _, err := w.admin.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": queueType}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.admin.QueueBind(name, "build.#", pulse.ExchangeName(w.client, "build/normalized"), false, nil); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		if c, err := w.dial(); err == nil {
			if ch, err := c.Channel(); err == nil {
				_, _ = ch.QueueDelete(name, false, false, false)
			}
			c.Close()
		}
	})
	return name
}

// redial replaces the world's admin channel after the broker dropped it.
func (w *world) redial() {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := w.dial()
		if err == nil {
			ch, err := conn.Channel()
			if err == nil && ch.Confirm(false) == nil {
				w.admin = ch
				w.t.Cleanup(func() { conn.Close() })
				return
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the broker did not come back within 60s: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitFor polls a queue's message count until done says so. When the
// count has not moved for two minutes, it rescues a broker whose queue no
// longer answers (see rescueStuckQueue) and goes on waiting.
func (w *world) waitFor(queue string, limit time.Duration, done func(messages int) bool) bool {
	deadline := time.Now().Add(limit)
	last, moved := -1, time.Now()
	for time.Now().Before(deadline) {
		q, err := w.inspectWithin(queue, answerWithin)
		if err == nil {
			if done(q.Messages) {
				return true
			}
			if q.Messages != last {
				last, moved = q.Messages, time.Now()
			}
		}
		if time.Since(moved) > 2*time.Minute {
			w.rescueStuckQueue()
			moved = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// consumeAll consumes a queue, with automatic acks, until it stays empty
// for two seconds, and gives each delivery to each.
func (w *world) consumeAll(queue string, each func(amqp.Delivery)) {
	w.t.Helper()
	if err := w.admin.Qos(1000, 0, false); err != nil {
		w.t.Fatal(err)
	}
	deliveries, err := w.admin.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				w.t.Fatalf("the consumer of %s was closed", queue)
			}
			each(d)
		case <-time.After(2 * time.Second):
			return
		}
	}
}

// drain consumes a queue until it stays empty for two seconds and counts
// the deliveries by message id.
func (w *world) drain(queue string) map[string]int {
	w.t.Helper()
	ids := map[string]int{}
	w.consumeAll(queue, func(d amqp.Delivery) { ids[d.MessageId]++ })
	return ids
}

// deadClasses consumes the dead queue until it stays empty for two
// seconds and counts what it held by class: the translator's
// x-pulsetranslator-class of a parked copy, or "broker:" and the x-death
// reason of a message the broker dead-lettered itself.
func (w *world) deadClasses(queue string) map[string]int {
	w.t.Helper()
	classes := map[string]int{}
	w.consumeAll(queue, func(d amqp.Delivery) {
		if class, ok := d.Headers[pulse.HeaderClass].(string); ok {
			classes[class]++
		} else {
			classes[fmt.Sprintf("broker:%v", d.Headers["x-first-death-reason"])]++
		}
	})
	return classes
}

// faultRun publishes the stream to the translator's input, starts the
// command, calls fault once a third of the outputs are out, and checks
// every expected output arrives once the input is drained.
func faultRun(t *testing.T, name string, fault func(w *world, proc *translatorProcess, text string)) {
	w := newWorldOnOwnNode(t)
	n := faultMessages(t)
	w.maxLength = 2 * n
	user := w.pulseUser()
	text := w.configText(user, "[builtin:buildbot.yaml]", "")
	s := newStream(t, w.parse(text), n)

	// Declare the topology, then publish the whole stream while nothing
	// consumes, so that the fault cannot cost the test its own publishes.
	w.startTranslator(text).kill()
	probe := w.durableProbe()
	began := time.Now()
	if err := s.publish(w); err != nil {
		t.Fatal(err)
	}
	proc := w.startTranslator(text)
	third := len(s.expected) / 3
	if !w.waitFor(probe, 5*time.Minute, func(m int) bool { return m >= third }) {
		t.Fatalf("fewer than %d outputs within 5 minutes", third)
	}
	fault(w, proc, text)

	input := pulse.InputQueue(w.client, "build")
	if !w.waitFor(input, 10*time.Minute, func(m int) bool { return m == 0 }) {
		t.Fatal("the input queue was not drained within 10 minutes of the fault")
	}
	// The last messages in hand are published and acked within moments.
	time.Sleep(2 * time.Second)
	ids := w.drain(probe)
	lost, duplicates, unexpected := delivered(s.expected, ids, nil)
	t.Logf("%s: %d raw messages published, %d outputs expected, %d arrived in %s: %d lost, %d duplicates, %d unexpected",
		name, n, len(s.expected), len(ids), time.Since(began).Round(time.Second), lost, duplicates, unexpected)
	if lost > 0 || unexpected > 0 {
		t.Errorf("%d outputs lost, %d unexpected", lost, unexpected)
	}
}

// TestCrashSafety kills the translator with SIGKILL part-way through the
// stream and starts a new one.
func TestCrashSafety(t *testing.T) {
	faultRun(t, "SIGKILL", func(w *world, proc *translatorProcess, text string) {
		proc.kill()
		w.startTranslator(text)
	})
}

// TestBrokerClosesConnections has the broker close every connection
// mid-stream; the translator reconnects by itself.
func TestBrokerClosesConnections(t *testing.T) {
	faultRun(t, "close_all_connections", func(w *world, proc *translatorProcess, text string) {
		w.ctl("close_all_connections", "pulsetranslator fault test")
		w.redial()
	})
}

// TestBrokerRestart stops and starts the RabbitMQ application mid-stream;
// the translator reconnects by itself.
func TestBrokerRestart(t *testing.T) {
	faultRun(t, "stop_app/start_app", func(w *world, proc *translatorProcess, text string) {
		w.restartBroker(2 * time.Second)
		select {
		case <-proc.done:
			t.Fatal("the translator exited when the broker went away; it must reconnect")
		default:
		}
	})
}
