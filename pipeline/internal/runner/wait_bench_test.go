package runner_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publishMany publishes the builds upstream, keeping up to 256 confirms
// outstanding, and returns once the broker has confirmed them all.
func (w *world) publishMany(builds []gatedBuild) error {
	const window = 256
	pending := make([]*amqp.DeferredConfirmation, 0, window)
	flush := func() error {
		for _, dc := range pending {
			if !dc.Wait() {
				return fmt.Errorf("upstream publish nacked")
			}
		}
		pending = pending[:0]
		return nil
	}
	for _, b := range builds {
		dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, b.key, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: b.body,
		})
		if err != nil {
			return err
		}
		if pending = append(pending, dc); len(pending) == window {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// BenchmarkGateFlow measures the rate at which messages whose logs exist
// flow through a pipeline with a readiness gate (a HEAD to a local server
// per message, each log distinct), first with nothing waiting, then with
// 10,000 messages waiting in RabbitMQ for logs that never appear. The
// waiting messages' tier (10m) outlasts the run, so the second figure
// shows what holding them costs; each recheck, when a tier expires, costs
// about what one message costs. Run with a fixed count, for example
//
//	go test ./pipeline -run '^$' -bench GateFlow -benchtime 4000x -count 5
func BenchmarkGateFlow(b *testing.B) {
	const waitingCount = 10000
	conn := brokerOrSkip(b)
	w := newWorld(b, conn)
	w.maxLength = 4 * waitingCount
	store := newArtifactStore(b)
	store.readyPrefix = "/ready-"
	rn := start(b, w.parse(w.gateConfig(w.pulseUser(), []time.Duration{10 * time.Minute}, time.Hour, "dead")))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	stats := rn.Stats("build")
	runs := 0

	measure := func(b *testing.B) {
		runs++
		builds := make([]gatedBuild, b.N)
		for i := range builds {
			builds[i] = newGatedBuild(b, store, fmt.Sprintf("ready-%d-%d", runs, i))
		}
		b.ResetTimer()
		began := time.Now()
		published := make(chan error, 1)
		go func() { published <- w.publishMany(builds) }()
		for range b.N {
			receive(b, main, "the output exchange")
		}
		elapsed := time.Since(began)
		b.StopTimer()
		if err := <-published; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	}

	b.Run("nothing-waiting", measure)

	missing := make([]gatedBuild, waitingCount)
	for i := range missing {
		missing[i] = newGatedBuild(b, store, fmt.Sprintf("missing-%d", i))
	}
	if err := w.publishMany(missing); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for stats.Waited.Load() < waitingCount && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	q, err := w.inspect(pulse.WaitQueue(w.client, "build", 10*time.Minute))
	if err != nil || q.Messages != waitingCount {
		b.Fatalf("the wait queue holds %d messages (%v), want %d", q.Messages, err, waitingCount)
	}
	b.Run("10k-waiting", measure)
}
