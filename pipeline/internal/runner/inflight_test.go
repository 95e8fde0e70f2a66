package runner_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// awaitOutputs counts the distinct outputs (by message id) arriving on
// deliveries until want have, or until limit; it returns how many and
// when the last came.
func awaitOutputs(deliveries <-chan amqp.Delivery, want int, limit time.Duration) (int, time.Time) {
	seen := map[string]bool{}
	var last time.Time
	deadline := time.After(limit)
	for len(seen) < want {
		select {
		case d := <-deliveries:
			seen[d.MessageId] = true
			last = time.Now()
		case <-deadline:
			return len(seen), last
		}
	}
	return len(seen), last
}

// TestSlowHostCostsOnlyItsTime: 64 messages whose logs answer only after
// a second each are checked side by side, not one after another: all are
// published within a few seconds (a runner holding one message per
// consumer took 16s with 4 consumers).
func TestSlowHostCostsOnlyItsTime(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(time.Second) }))
	t.Cleanup(slow.Close)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	start(t, w.parse(text))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	builds := make([]gatedBuild, 64)
	for i := range builds {
		builds[i] = gatedBuildAt(t, slow.URL, fmt.Sprintf("slow-%d", i))
	}
	began := time.Now()
	if err := w.publishMany(builds); err != nil {
		t.Fatal(err)
	}
	n, last := awaitOutputs(main, len(builds), 30*time.Second)
	took := last.Sub(began)
	t.Logf("64 messages whose logs answer after 1s each: %d published, the last %s after the first was sent", n, took.Round(time.Millisecond))
	if n != len(builds) || took > 12*time.Second {
		t.Errorf("%d of 64 published in %s; want all within a few seconds (6s on an idle machine)", n, took)
	}
}

// TestHangingHostHoldsUpOnlyItsOwn: 24 messages whose log host accepts
// connections and never answers, then 64 whose logs are there: the 64
// are published at once, and the 24 go to their wait queue when their
// check budget is spent, without holding a slot the others need.
func TestHangingHostHoldsUpOnlyItsOwn(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	hanging := hangingHost(t)
	store := newArtifactStore(t)
	store.all.Store(true)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	rn, logs := startLogged(t, w.parse(text))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	var builds []gatedBuild
	for i := range 24 {
		builds = append(builds, gatedBuildAt(t, "http://"+hanging, fmt.Sprintf("hang-%d", i)))
	}
	for i := range 64 {
		builds = append(builds, newGatedBuild(t, store, fmt.Sprintf("ready-%d", i)))
	}
	began := time.Now()
	if err := w.publishMany(builds); err != nil {
		t.Fatal(err)
	}
	n, last := awaitOutputs(main, 64, 30*time.Second)
	took := last.Sub(began)
	t.Logf("64 ready messages behind 24 whose log host hangs: %d published, the last %s after the first was sent", n, took.Round(time.Millisecond))
	if n != 64 || took > 10*time.Second {
		t.Errorf("%d of 64 ready messages published in %s; want all within a few seconds (5s on an idle machine)", n, took)
	}
	stats := rn.Stats("build")
	deadline := time.Now().Add(20 * time.Second)
	// Outputs can arrive before the translator has their confirms and
	// counts them: wait for both counts.
	for (stats.Waited.Load() < 24 || stats.Published.Load() < 64) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if stats.Waited.Load() != 24 || stats.Published.Load() != 64 {
		t.Errorf("waited %d, published %d; want the 24 in the wait queue and the 64 published", stats.Waited.Load(), stats.Published.Load())
	}
	// 24 failed checks of one host: one line now, the count later, not 24.
	if n := strings.Count(logs.String(), "artifact check failed"); n < 1 || n > 2 {
		t.Errorf("%d log lines for 24 failed checks of one host; want the first, and then one with the count:\n%s", n, logs.String())
	}
}
