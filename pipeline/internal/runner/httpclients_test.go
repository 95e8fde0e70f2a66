package runner_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// TestIdleHTTPClientsStarveNothing runs the command with --http under a
// limit of 512 file descriptors and opens 3,000 connections to its HTTP
// port that send nothing (PULSETRANSLATOR_IDLE_CLIENTS sets another
// count; helper processes hold them, 10,000 each): /healthz still
// answers, the process keeps far fewer descriptors than its limit, and
// the readiness gate still dials the log host, so gated messages keep
// flowing. Without the bound on the server's connections, the idle ones
// took every descriptor and the gate's dials failed with "too many open
// files".
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
	clients := 3000
	if n, err := strconv.Atoi(os.Getenv("PULSETRANSLATOR_IDLE_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	for left := clients; left > 0; left -= holdPerProcess {
		holdIdle(t, addr, min(left, holdPerProcess))
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	began := time.Now()
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz behind %d idle connections: %v", clients, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Logf("/healthz behind %d idle connections: %s in %s", clients, resp.Status, time.Since(began).Round(time.Millisecond))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz behind %d idle connections: %s", clients, resp.Status)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the translator holds %d file descriptors beside %d idle clients; its peak RSS is %.1f MiB", len(fds), clients, float64(peakRSS(t, p.cmd.Process.Pid))/(1<<20))
	if len(fds) > 256 {
		t.Errorf("the translator holds %d file descriptors; the HTTP server may hold %d connections", len(fds), 128)
	}
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	builds := make([]gatedBuild, 40)
	for i := range builds {
		builds[i] = newGatedBuild(t, store, fmt.Sprintf("idle-http-%d", i))
	}
	if err := w.publishMany(builds); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	if n, _ := awaitOutputs(main, len(builds), 20*time.Second); n != len(builds) {
		t.Errorf("%d of %d gated messages published beside %d idle HTTP clients:\n%s", n, len(builds), clients, p.logs.String())
	}
	t.Logf("%d gated messages published beside %d idle clients in %s", len(builds), clients, time.Since(published).Round(time.Millisecond))
}

// Idle connections are held by helper processes (this test binary, run
// with holdEnvAddr and holdEnvCount set), each holding at most
// holdPerProcess, so that their count is not bounded by the test
// process's own file descriptors.
const (
	holdEnvAddr    = "PULSETRANSLATOR_TEST_HOLD_ADDR"
	holdEnvCount   = "PULSETRANSLATOR_TEST_HOLD_COUNT"
	holdPerProcess = 10000
	holdingLine    = "holding"
)

// holdIdle starts a helper process that opens n connections to addr,
// sends nothing, and holds them until the test ends.
func holdIdle(t *testing.T, addr string, n int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnvAddr+"="+addr, holdEnvCount+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != holdingLine {
		t.Fatalf("the helper holding %d idle connections: %q %v\n%s", n, line, err, out.String())
	}
}

// holdConnections is the helper process: it opens count connections to
// addr, says so, and holds them until its standard input closes.
func holdConnections(addr, count string) int {
	n, err := strconv.Atoi(count)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "connection %d: %v\n", len(conns)+1, err)
			return 1
		}
		conns = append(conns, c)
	}
	fmt.Println(holdingLine)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}
