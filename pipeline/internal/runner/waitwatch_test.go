package runner_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
)

// TestOverdueWaitersAreReported: canaries go through the first wait tier
// (1 s) every 500 ms and come back, which moves
// pulsetranslator_wait_last_return_timestamp_seconds. While the wait queue
// hands nothing back (its process suspended, as RabbitMQ's stalled
// dead-letter worker hands nothing back), /readyz stays 200 but warns,
// naming the pipeline, and the log warns once; when the queue answers
// again, the canaries come back and the warning goes.
func TestOverdueWaitersAreReported(t *testing.T) {
	runner.SetCanaryInterval(t, 500*time.Millisecond)
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	w.tiers = []time.Duration{time.Second}
	text := w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "    wait: {tiers: [1s], deadline: 1m}\n")
	began := time.Now()
	_, logs, srv := startServed(t, w.parse(text))

	lastReturn := regexp.MustCompile(`pulsetranslator_wait_last_return_timestamp_seconds\{pipeline="build"\} (\S+)`)
	returnedAfter := func(after time.Time, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
			_, text := get(t, srv.URL+"/metrics")
			if m := lastReturn.FindStringSubmatch(text); m != nil {
				if at, err := strconv.ParseFloat(m[1], 64); err == nil && at > float64(after.UnixNano())/1e9 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no canary came back within %s:\n%s", within, lastReturn.FindString(text))
			}
		}
	}
	returnedAfter(began, 10*time.Second)
	readyz := func() (int, string) { return get(t, srv.URL+"/readyz") }
	if code, body := readyz(); code != http.StatusOK || strings.Contains(body, "warning") {
		t.Fatalf("/readyz while canaries come back: %d %q", code, body)
	}

	wait := pulse.WaitQueue(w.client, "build", time.Second)
	resume := brokertest.SuspendQueue(t, wait, time.Minute)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body := readyz()
		if strings.Contains(body, "warning: pipeline build: nothing has come back from its wait queues") {
			if code != http.StatusOK {
				t.Errorf("/readyz with overdue waiters: %d; want 200 with a warning", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz says nothing of overdue waiters 20s after the wait queue stopped: %d %q", code, body)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "waiting messages are overdue") && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // two more canary ticks: no second warning
	if n := strings.Count(logs.String(), "waiting messages are overdue"); n != 1 {
		t.Errorf("the log warned %d times of overdue waiters; want once:\n%s", n, logs)
	}
	resumed := time.Now()
	resume()
	returnedAfter(resumed, 15*time.Second)
	if _, body := readyz(); strings.Contains(body, "warning") {
		t.Errorf("/readyz still warns once canaries come back: %q", body)
	}
	if !strings.Contains(logs.String(), "waiting messages come back from the wait queues again") {
		t.Errorf("the log does not say waiting messages come back again:\n%s", logs)
	}
}
