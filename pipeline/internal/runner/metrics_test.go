package runner_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestMetricsAndHealth runs a pipeline with metrics, sends it a message
// that is published, one that is dropped and one that is parked, and
// scrapes /metrics for exactly the counts it caused; /readyz turns ready
// once the runner consumes.
func TestMetricsAndHealth(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	rn, err := runner.New(w.config(w.pulseUser()), translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHTTP(t, rn)
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Run: %d, want 503", code)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", code)
	}
	runWith(t, rn)
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz while running: %d, want 200", code)
	}

	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	good, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key, good)
	receive(t, main, "the output exchange")
	w.publishRaw(strings.Replace(key, "log_uploaded", "finished", 1), []byte(strings.Replace(string(good), "log_uploaded", "finished", 1)))
	w.publishRaw(key, []byte(`{"payload": `))

	want := []string{
		`pulsetranslator_consumed_total{pipeline="build"} 3`,
		`pulsetranslator_published_total{pipeline="build"} 1`,
		`pulsetranslator_dropped_total{class="duplicate_finished",pipeline="build"} 1`,
		`pulsetranslator_parked_total{class="malformed_json",pipeline="build"} 1`,
		`pulsetranslator_publish_confirm_seconds_count{pipeline="build"} 2`, // the output and the parked copy
	}
	var text string
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, text = get(t, srv.URL+"/metrics")
		missing := 0
		for _, line := range want {
			if !strings.Contains(text, line) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, line := range want {
				if !strings.Contains(text, line) {
					t.Errorf("/metrics lacks %s", line)
				}
			}
			t.Logf("/metrics:\n%s", grepLines(text, "pulsetranslator_"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestQueueDepths reads the depth of the pipeline's queues from /metrics
// and the live page's /api/status: an input backlog that rises while the
// translator holds its messages and falls once it lets them go, and
// three parked messages in the dead queue.
func TestQueueDepths(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	release := make(chan struct{})
	reg := &translator.Registry{}
	buildbot, _ := translator.Default.Lookup("buildbot")
	if err := reg.Register(withBuildbotData(translator.Spec{Name: "held", New: func(p translator.Params) (translator.Translator, error) {
		tr, err := buildbot.New(p)
		if err != nil {
			return nil, err
		}
		return translator.Func(func(m translator.Message) ([]translator.Output, error) {
			<-release
			return tr.Translate(m)
		}), nil
	}})); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "    prefetch: 10\n"), "translator: buildbot", "translator: held", 1)
	rn, err := runner.New(w.parse(text), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHTTP(t, rn)
	runWith(t, rn)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	// gauge waits until /metrics shows want for the pipeline's queue.
	gauge := func(queue string, ok func(float64) bool, what string) float64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var last float64 = -1
		for time.Now().Before(deadline) {
			_, text := get(t, srv.URL+"/metrics")
			prefix := `pulsetranslator_queue_messages{pipeline="build",queue="` + queue + `"} `
			for _, line := range strings.Split(text, "\n") {
				if v, found := strings.CutPrefix(line, prefix); found {
					fmt.Sscan(v, &last)
					if ok(last) {
						return last
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("queue %s: %s never showed on /metrics (last %v)", queue, what, last)
		return 0
	}
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	builds := make([]gatedBuild, 300)
	for i := range builds {
		builds[i] = gatedBuild{key: key, body: append([]byte(fmt.Sprintf(`{"copy": %d, `, i)), body[1:]...)}
	}
	if err := w.publishMany(builds); err != nil {
		t.Fatal(err)
	}
	risen := gauge("input", func(v float64) bool { return v >= 250 }, "a backlog of 250 or more")
	if _, status := get(t, srv.URL+"/api/status"); !strings.Contains(status, `"name":"`+pulse.InputQueue(w.client, "build")+`","messages":`) {
		t.Errorf("/api/status does not name the input queue with its depth: %.300s", status)
	}
	close(release)
	gauge("input", func(v float64) bool { return v == 0 }, "the backlog drained")
	for range 3 {
		w.publishRaw(key, []byte(`{"payload": `))
	}
	gauge("dead", func(v float64) bool { return v == 3 }, "3 parked")
	_, metricsText := get(t, srv.URL+"/metrics")
	for _, line := range []string{
		`pulsetranslator_queue_max_length{pipeline="build",queue="input"} 1000`,
		`pulsetranslator_queue_max_length{pipeline="build",queue="dead"} 1000`,
		`pulsetranslator_ready 1`,
	} {
		if !strings.Contains(metricsText, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	t.Logf("the input backlog rose to %.0f and fell to 0; the dead queue holds 3", risen)
}

// serveHTTP gives rn metrics in a registry of its own and serves its HTTP
// endpoints (metrics, health, the live page) until the test ends, as run
// --http does.
func serveHTTP(t *testing.T, rn *runner.Runner) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := runner.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rn.UseMetrics(metrics)
	srv := httptest.NewServer(runner.HTTPHandler(rn, reg))
	t.Cleanup(srv.Close)
	return srv
}
