package runner_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// chromium finds Debian's chromium. With CI=true a missing one is
// installed, or the test fails; elsewhere the test is skipped.
func chromium(t *testing.T) string { return brokertest.DebianTool(t, "chromium", "chromium") }

// headless runs chromium on url as the probe of this machine does:
// headless, with no network of its own beyond the page, in a fresh
// profile, letting the page's scripts run for budget of virtual time.
func headless(t *testing.T, browser, url string, budget time.Duration, extra ...string) []byte {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=" + strings.TrimSuffix(budget.String(), "s") + "000"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return out
}

// TestLivePage renders the live page in headless Chromium, as an
// operator's browser would, once a message was published and one parked:
// what a person sees names the pipeline, each queue by its full name with
// its depth, the output's routing key and the parked message's class; the
// connection string is nowhere. A screenshot is kept in the test's
// temporary folder.
func TestLivePage(t *testing.T) {
	browser := chromium(t)
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	connection := w.pulseUser()
	rn, _, srv := startServed(t, w.config(connection))

	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key, body)
	w.publishRaw("build.mozilla-central-linux64.7.log_uploaded", []byte(`{"payload": `))
	stats := rn.Stats("build")
	deadline := time.Now().Add(20 * time.Second)
	for (stats.Published.Load() < 1 || stats.Parked.Load() < 1 || !strings.Contains(statusOf(t, srv.URL), `"role":"dead","name":"`+pulse.DeadQueue(w.client, "build")+`","messages":1`)) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}

	dom := string(headless(t, browser, srv.URL+"/", 3*time.Second, "--dump-dom"))
	for _, want := range []string{
		"pipeline build · translator buildbot",
		pulse.InputQueue(w.client, "build"),
		pulse.DeadQueue(w.client, "build"),
		`<td class="num depth">1</td>`, // the dead queue's depth
		"build.mozilla-central.linux64.opt.mozilla-central-linux64",
		"route.tree.mozilla-central",
		`<td class="class">malformed_json</td>`,
		"build.mozilla-central-linux64.7.log_uploaded",
		"ready · connected to 127.0.0.1:5672",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	// What needs action comes first: the parked messages, above the
	// queues and the outputs, their counter marked; rows tell themselves
	// apart by the raw message they came from and their id; times carry
	// their date.
	parked, queues, outs := strings.Index(dom, "last parked"), strings.Index(dom, ">queues<"), strings.Index(dom, "last outputs")
	if parked < 0 || parked > queues || queues > outs {
		t.Errorf("the page's sections are at %d (parked), %d (queues), %d (outputs); want the parked first", parked, queues, outs)
	}
	for _, want := range []string{`class="counter alert" data-counter="parked"`, "from " + key, `<div class="source">id `, time.Now().UTC().Format("2006-01-02 ")} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	password := strings.Split(strings.Split(connection, "@")[0], ":")[2]
	if strings.Contains(dom, password) || strings.Contains(dom, w.client+":") {
		t.Error("the rendered page shows the connection string")
	}
	shot := filepath.Join(t.TempDir(), "live.png")
	headless(t, browser, srv.URL+"/", 3*time.Second, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars")
	info, err := os.Stat(shot)
	if err != nil || info.Size() < 10000 {
		t.Fatalf("no screenshot of the page: %v", err)
	}
	if os.Getenv("PULSE_KEEP_SCREENSHOT") != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(os.Getenv("PULSE_KEEP_SCREENSHOT"), data, 0o644)
	}
	t.Logf("rendered the live page; screenshot %s (%d bytes)", shot, info.Size())
	if t.Failed() {
		t.Logf("the page as rendered:\n%s", dom)
	}
}

func statusOf(t *testing.T, base string) string {
	_, body := get(t, base+"/api/status")
	return body
}
