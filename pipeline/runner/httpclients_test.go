package runner_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/brokertest"
)

// TestIdleHTTPClientsStarveNothing runs the command with --http under a
// limit of 512 file descriptors and opens 3,000 connections to its HTTP
// port that send nothing: /healthz still answers, the process keeps far
// fewer descriptors than its limit, and the readiness gate still dials
// the log host, so gated messages keep flowing. Without the bound on the
// server's connections, the idle ones took every descriptor and the
// gate's dials failed with "too many open files".
func TestIdleHTTPClientsStarveNothing(t *testing.T) {
	conn := brokerOrSkip(t)
	prlimit := brokertest.DebianTool(t, "prlimit", "util-linux")
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	store.all.Store(true)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	p := w.launchUnder([]string{prlimit, "--nofile=512"}, text, "--http", "127.0.0.1:0")
	var addr string
	serving := regexp.MustCompile(`serving metrics and health.*"address":"(127\.0\.0\.1:\d+)"`)
	for deadline := time.Now().Add(20 * time.Second); addr == ""; time.Sleep(50 * time.Millisecond) {
		if m := serving.FindStringSubmatch(p.logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the translator did not say where it serves:\n%s", p.logs.String())
		}
	}
	for deadline := time.Now().Add(20 * time.Second); w.consumers("build") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the translator did not consume within 20s")
		}
	}
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 3000 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle)+1, err)
		}
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz behind 3,000 idle connections: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz behind 3,000 idle connections: %s", resp.Status)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the translator holds %d file descriptors beside 3,000 idle clients", len(fds))
	if len(fds) > 256 {
		t.Errorf("the translator holds %d file descriptors; the HTTP server may hold %d connections", len(fds), 128)
	}
	main := w.probe(pipeline.ExchangeName(w.client, "build/normalized"), "build.#")
	builds := make([]gatedBuild, 40)
	for i := range builds {
		builds[i] = newGatedBuild(t, store, fmt.Sprintf("idle-http-%d", i))
	}
	if err := w.publishMany(builds); err != nil {
		t.Fatal(err)
	}
	if n, _ := awaitOutputs(main, len(builds), 20*time.Second); n != len(builds) {
		t.Errorf("%d of %d gated messages published beside 3,000 idle HTTP clients:\n%s", n, len(builds), p.logs.String())
	}
}
