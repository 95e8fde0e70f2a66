package runner_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// artifactStore is a local HTTP server standing in for the place build
// logs are uploaded to: every path answers 404 until it is made ready.
type artifactStore struct {
	srv    *httptest.Server
	mu     sync.Mutex
	ready  map[string]bool
	all    atomic.Bool
	checks atomic.Int64
	// credentials counts the checks that came with credentials.
	credentials atomic.Int64
	// readyPrefix, when set, makes every path under it ready.
	readyPrefix string
}

func newArtifactStore(t testing.TB) *artifactStore {
	a := &artifactStore{ready: map[string]bool{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.checks.Add(1)
		if r.Header.Get("Authorization") != "" || r.URL.User != nil {
			a.credentials.Add(1)
		}
		a.mu.Lock()
		ok := a.all.Load() || a.ready[r.URL.Path] || (a.readyPrefix != "" && strings.HasPrefix(r.URL.Path, a.readyPrefix))
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *artifactStore) makeReady(path string) {
	a.mu.Lock()
	a.ready[path] = true
	a.mu.Unlock()
}

// gatedBuild is a corpus build message (one output) whose URLs point into
// the artifact store under /<tag>/, so that each tag makes a distinct
// message with its own log.
type gatedBuild struct {
	body    []byte
	key     string
	logPath string
	logURL  string
}

const gatedBuildFile = "mozilla-central/build.mozilla-central-linux64.105.log_uploaded"

func newGatedBuild(t testing.TB, store *artifactStore, tag string) gatedBuild {
	t.Helper()
	return gatedBuildAt(t, store.srv.URL, tag)
}

// gatedBuildAt is a gated build whose URLs point under base + /<tag>/.
func gatedBuildAt(t testing.TB, base, tag string) gatedBuild {
	t.Helper()
	body, key := corpusFile(t, gatedBuildFile)
	prefix := "/" + tag + "/"
	body = []byte(strings.ReplaceAll(string(body), "http://archive.mozilla.org/", base+prefix))
	logPath := prefix + "pub/firefox/tinderbox-builds/mozilla-central-linux64/1446634715/mozilla-central-linux64-bm73-build1-build105.txt.gz"
	if !strings.Contains(string(body), base+logPath) {
		t.Fatalf("the corpus file %s no longer has the log URL this test rewrites", gatedBuildFile)
	}
	return gatedBuild{body: body, key: key, logPath: logPath, logURL: base + logPath}
}

// gateConfig is the world's pipeline with the buildbot wait rule and the
// given wait section.
func (w *world) gateConfig(connection string, tiers []time.Duration, deadline time.Duration, onDeadline string) string {
	w.tiers = tiers
	names := make([]string, len(tiers))
	for i, tier := range tiers {
		names[i] = tier.String()
	}
	extra := fmt.Sprintf("    wait: {tiers: [%s], deadline: %s, on_deadline: %s, check: {timeout: 2s, allow_private: true}}\n",
		strings.Join(names, ", "), deadline, onDeadline)
	return w.configText(connection, "[builtin:buildbot.yaml, builtin:buildbot-wait.yaml]", extra)
}

func payloadOf(t testing.TB, d amqp.Delivery) map[string]any {
	t.Helper()
	var env struct {
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal(d.Body, &env); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	return env.Payload
}

// TestGateHoldsUntilArtifactExists: a message whose log exists is published
// on the first pass; one whose log answers 404 waits in the wait queues,
// is not published while it is 404, and is published within one tier of
// the log appearing. It runs as a user with only the Pulse permissions:
// the wait exchange, queues and dead-lettering all stay in its namespace.
func TestGateHoldsUntilArtifactExists(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	const shortTier, longTier = 250 * time.Millisecond, time.Second
	rn := start(t, w.parse(w.gateConfig(w.pulseUser(), []time.Duration{shortTier, longTier}, time.Minute, "dead")))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	waiting := w.probe(pulse.HoldExchange(w.client, "build"), pulse.TierName(shortTier), pulse.TierName(longTier))
	stats, checks := rn.Stats("build"), rn.Checks("build")

	ready := newGatedBuild(t, store, "ready")
	store.makeReady(ready.logPath)
	w.publishRaw(ready.key, ready.body)
	if got := payloadOf(t, receive(t, main, "the output (log already there)"))["logurl"]; got != ready.logURL {
		t.Errorf("logurl %v, want %s", got, ready.logURL)
	}
	if stats.Waited.Load() != 0 || checks.Ready.Load() != 1 {
		t.Errorf("a message whose log exists: waited %d times, %d ready checks; want 0 and 1", stats.Waited.Load(), checks.Ready.Load())
	}

	late := newGatedBuild(t, store, "late")
	w.publishRaw(late.key, late.body)
	// Its first two waits, seen on a probe bound to the wait exchange.
	for i, tier := range []time.Duration{shortTier, longTier} {
		d := receive(t, waiting, "the hold exchange")
		h := d.Headers
		if d.RoutingKey != pulse.TierName(tier) || h[pulse.HeaderAttempt] != fmt.Sprint(i+1) ||
			h[pulse.HeaderSourceRoutingKey] != late.key || h[pulse.HeaderSourceExchange] != w.upstream ||
			!strings.Contains(fmt.Sprint(h[pulse.HeaderWaitingFor]), late.logURL+" (not_yet: 404") || string(d.Body) != string(late.body) {
			t.Errorf("wait %d: key %q headers %v; want tier %s, attempt %d, the source and the URL, the body unchanged", i+1, d.RoutingKey, h, tier, i+1)
		}
	}
	for stats.Waited.Load() < 3 {
		select {
		case d := <-main:
			t.Fatalf("published while its log still answers 404: %s", d.RoutingKey)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if checks.NotYet.Load() < 3 {
		t.Errorf("%d not-yet checks after 3 waits", checks.NotYet.Load())
	}

	store.makeReady(late.logPath)
	appeared := time.Now()
	out := receive(t, main, "the output (log appeared)")
	if took := time.Since(appeared); took > longTier+time.Second {
		t.Errorf("published %s after the log appeared; the longest tier is %s", took, longTier)
	}
	p := payloadOf(t, out)
	if p["logurl"] != late.logURL || p[pulse.UnconfirmedField] != nil {
		t.Errorf("payload logurl %v, %s %v", p["logurl"], pulse.UnconfirmedField, p[pulse.UnconfirmedField])
	}
	if out.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
		t.Errorf("routing key %q, want the one of the source message", out.RoutingKey)
	}
	select {
	case d := <-main:
		t.Errorf("published twice: %s %s", d.RoutingKey, d.MessageId)
	case <-time.After(longTier + 500*time.Millisecond):
	}
}

// TestGateDeadline: the log never appears; past the deadline the message is
// parked with the URL and the reason, or, with on_deadline publish,
// published with the URL marked unconfirmed.
func TestGateDeadline(t *testing.T) {
	conn := brokerOrSkip(t)
	tiers := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}

	t.Run("dead", func(t *testing.T) {
		w := newWorld(t, conn)
		store := newArtifactStore(t)
		rn := start(t, w.parse(w.gateConfig(w.pulseUser(), tiers, 1500*time.Millisecond, "dead")))
		main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
		dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		never := newGatedBuild(t, store, "never")
		w.publishRaw(never.key, never.body)
		parked := receive(t, dead, "the dead queue")
		reason := fmt.Sprint(parked.Headers[pulse.HeaderReason])
		if parked.Headers[pulse.HeaderClass] != pulse.ClassArtifactsMissing || !strings.Contains(reason, never.logURL) ||
			!strings.Contains(reason, "404") || !strings.Contains(reason, "deadline 1.5s") {
			t.Errorf("parked with class %v, reason %q; want %s naming the URL, its 404 and the deadline",
				parked.Headers[pulse.HeaderClass], reason, pulse.ClassArtifactsMissing)
		}
		if parked.RoutingKey != never.key || string(parked.Body) != string(never.body) {
			t.Errorf("parked copy: key %q; want the original key and body", parked.RoutingKey)
		}
		select {
		case d := <-main:
			t.Errorf("published although its log never appeared: %s", d.RoutingKey)
		default:
		}
		// The copy is counted once its confirm is back, which may be just
		// after the dead queue's consumer got it.
		s := rn.Stats("build")
		for deadline := time.Now().Add(5 * time.Second); s.Parked.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if s.Expired.Load() != 1 || s.Parked.Load() != 1 || s.Waited.Load() < 2 {
			t.Errorf("expired %d parked %d waited %d", s.Expired.Load(), s.Parked.Load(), s.Waited.Load())
		}
	})

	t.Run("publish", func(t *testing.T) {
		w := newWorld(t, conn)
		store := newArtifactStore(t)
		start(t, w.parse(w.gateConfig(w.pulseUser(), tiers, time.Second, "publish")))
		main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
		never := newGatedBuild(t, store, "never")
		w.publishRaw(never.key, never.body)
		p := payloadOf(t, receive(t, main, "the output past its deadline"))
		if fmt.Sprint(p[pulse.UnconfirmedField]) != fmt.Sprint([]any{never.logURL}) {
			t.Errorf("%s = %v, want [%s]", pulse.UnconfirmedField, p[pulse.UnconfirmedField], never.logURL)
		}
	})
}

// TestWaitingMessagesSurviveKill kills the translator process with SIGKILL
// while its messages wait for their logs, starts a new one, and checks
// every message is published once its log appears: none lost, and no more
// duplicates than the messages the killed process had in hand.
func TestWaitingMessagesSurviveKill(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	tiers := []time.Duration{300 * time.Millisecond, time.Second}
	text := w.gateConfig(w.pulseUser(), tiers, 5*time.Minute, "dead")
	first := w.startTranslator(text)
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	const n = 200
	for i := range n {
		b := newGatedBuild(t, store, fmt.Sprintf("b%d", i))
		w.publishRaw(b.key, b.body)
	}
	// Every message checked at least twice: all have waited, and many are
	// on their way back from a wait queue when the process dies.
	deadline := time.Now().Add(60 * time.Second)
	for store.checks.Load() < 2*n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if store.checks.Load() < 2*n {
		t.Fatalf("only %d checks of %d messages within 60s", store.checks.Load(), n)
	}
	first.kill()
	// Once the broker has taken back what the process had in hand and the
	// wait queues have expired into the input queue, the input queue holds
	// every message once, and twice each one the process had already sent
	// to a wait queue without acking it.
	held := w.settledInput(tiers)
	select {
	case d := <-main:
		t.Fatalf("published before any log existed: %s", d.RoutingKey)
	default:
	}

	store.all.Store(true)
	w.startTranslator(text)
	seen := map[string]int{}
	total := 0
	timeout := time.After(60 * time.Second)
	for len(seen) < n {
		select {
		case d := <-main:
			seen[fmt.Sprint(payloadOf(t, d)["logurl"])]++
			total++
		case <-timeout:
			t.Fatalf("after the restart only %d of %d messages were published", len(seen), n)
		}
	}
	// Stragglers: duplicates arrive within a tier of the last original.
	linger := time.After(tiers[1] + time.Second)
	for done := false; !done; {
		select {
		case d := <-main:
			seen[fmt.Sprint(payloadOf(t, d)["logurl"])]++
			total++
		case <-linger:
			done = true
		}
	}
	duplicates := total - n
	t.Logf("%d messages, %d held by the broker when the process was killed, %d published after the restart: %d lost, %d duplicates",
		n, held, total, n-len(seen), duplicates)
	if len(seen) != n {
		t.Errorf("%d distinct outputs, want %d", len(seen), n)
	}
	// At-least-once: a message the killed process had already sent to a
	// wait queue but not yet acked comes back twice, and no other does.
	if inHand := held - n; duplicates > inHand || inHand > 2*config.DefaultPrefetch {
		t.Errorf("%d duplicates, %d messages held twice by the broker after the kill; want no more duplicates than those, and those within the 2 consumers' prefetch (%d)", duplicates, inHand, 2*config.DefaultPrefetch)
	}
}

// settledInput waits, after the translator process is killed, until the
// wait queues of tiers are empty and the input queue's count holds still,
// and returns that count.
func (w *world) settledInput(tiers []time.Duration) int {
	w.t.Helper()
	last := -1
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		waiting := 0
		for _, tier := range tiers {
			q, err := w.inspectWithin(pulse.WaitQueue(w.client, "build", tier), answerWithin)
			if err != nil {
				w.t.Fatal(err)
			}
			waiting += q.Messages
		}
		q, err := w.inspectWithin(pulse.InputQueue(w.client, "build"), answerWithin)
		if err != nil {
			w.t.Fatal(err)
		}
		if waiting == 0 && q.Messages == last {
			return last
		}
		last = q.Messages
	}
	w.t.Fatal("the queues did not settle within 30s of the kill")
	return 0
}
