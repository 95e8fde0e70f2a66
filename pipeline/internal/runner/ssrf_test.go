package runner_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// awaitParked waits until the pipeline's dead queue holds n messages and
// returns how many it holds of each class.
func awaitParked(t *testing.T, cfg *config.Config, n int, within time.Duration) map[string]int {
	t.Helper()
	var classes map[string]int
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		dead := openDead(t, cfg)
		parked, err := dead.Read(n + 10)
		dead.Close()
		if err != nil {
			t.Fatal(err)
		}
		classes = map[string]int{}
		for _, p := range parked {
			classes[p.Class]++
		}
		if len(parked) >= n {
			return classes
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead queue holds %v after %s; want %d messages", classes, within, n)
		}
	}
}

// TestArtifactURLPolicyParks: on the real broker, messages whose log URLs
// try to get around the allow list (user info naming an allowed host, a
// redirect from an allowed host to such a URL, a longer host name) are
// parked at once as bad_artifact_url, and the unlisted host they point to
// is sent nothing; a message whose log is on the allowed host is
// published. Without an allow list, a log on a host whose name resolves to
// this machine is parked too, when the check is refused as it connects,
// not left to wait until its deadline.
func TestArtifactURLPolicyParks(t *testing.T) {
	conn := brokerOrSkip(t)
	var unlistedHits atomic.Int64
	unlisted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { unlistedHits.Add(1) }))
	t.Cleanup(unlisted.Close)
	evil := strings.TrimPrefix(unlisted.URL, "http://")
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/redirect/") {
			http.Redirect(w, r, "http://"+r.Host+"@"+evil+r.URL.Path, http.StatusFound)
		}
	}))
	t.Cleanup(allowed.Close)
	good := strings.TrimPrefix(allowed.URL, "http://")

	t.Run("allow list", func(t *testing.T) {
		w := newWorld(t, conn)
		text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
		text = strings.Replace(text, "check: {timeout: 2s, allow_private: true}", fmt.Sprintf("check: {timeout: 2s, allow: ['http://logs.example/', 'http://%s/']}", good), 1)
		cfg := w.parse(text)
		start(t, cfg)
		main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
		builds := []gatedBuild{
			gatedBuildAt(t, "http://logs.example@"+evil, "userinfo-named"),
			gatedBuildAt(t, "http://"+good+"@"+evil, "userinfo-allowed"),
			gatedBuildAt(t, allowed.URL, "redirect"),
			gatedBuildAt(t, "http://logs.example.attacker.test", "suffix"),
			gatedBuildAt(t, allowed.URL, "fine"),
		}
		if err := w.publishMany(builds); err != nil {
			t.Fatal(err)
		}
		if n, _ := awaitOutputs(main, 1, 20*time.Second); n != 1 {
			t.Errorf("the message whose log is on the allowed host: %d outputs; want 1", n)
		}
		if classes := awaitParked(t, cfg, 4, 20*time.Second); classes[pulse.ClassBadArtifactURL] != 4 {
			t.Errorf("parked %v; want 4 bad_artifact_url", classes)
		}
		if n := unlistedHits.Load(); n != 0 {
			t.Errorf("the unlisted host was sent %d requests; want none", n)
		}
	})

	t.Run("name of this machine", func(t *testing.T) {
		name, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		w := newWorld(t, conn)
		text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
		text = strings.Replace(text, "check: {timeout: 2s, allow_private: true}", "check: {timeout: 2s}", 1)
		cfg := w.parse(text)
		start(t, cfg)
		port := good[strings.LastIndex(good, ":")+1:]
		if err := w.publishMany([]gatedBuild{gatedBuildAt(t, "http://"+name+":"+port, "by-name")}); err != nil {
			t.Fatal(err)
		}
		classes := awaitParked(t, cfg, 1, 20*time.Second)
		if classes[pulse.ClassBadArtifactURL] != 1 {
			t.Errorf("a log on %s, which resolves to this machine: parked %v; want bad_artifact_url", name, classes)
		}
	})
}
