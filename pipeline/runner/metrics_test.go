package runner_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/runner"
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
	reg := prometheus.NewRegistry()
	metrics, err := runner.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rn.UseMetrics(metrics)
	srv := httptest.NewServer(runner.HTTPHandler(rn, reg))
	defer srv.Close()
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

	main := w.probe(pipeline.ExchangeName(w.client, "build/normalized"), "build.#")
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
