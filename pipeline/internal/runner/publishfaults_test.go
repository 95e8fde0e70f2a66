package runner_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// startLogged runs cfg in process, its log written to the returned
// buffer, until the test ends.
func startLogged(t *testing.T, cfg *config.Config) (*runner.Runner, *brokertest.Logs) {
	t.Helper()
	rn, logs := newLogged(t, cfg)
	runWith(t, rn)
	return rn, logs
}

// startServed runs cfg as startLogged does, its HTTP handler (/metrics,
// /api/status, the live page) served from before it starts.
func startServed(t *testing.T, cfg *config.Config) (*runner.Runner, *brokertest.Logs, *httptest.Server) {
	t.Helper()
	rn, logs := newLogged(t, cfg)
	srv := serveHTTP(t, rn)
	runWith(t, rn)
	return rn, logs, srv
}

// newLogged makes a runner of cfg whose log is written to the returned
// buffer, and shown when the test fails.
func newLogged(t *testing.T, cfg *config.Config) (*runner.Runner, *brokertest.Logs) {
	t.Helper()
	logs := &brokertest.Logs{}
	rn, err := runner.New(cfg, translator.Default, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runner logs:\n%s", logs.String())
		}
	})
	return rn, logs
}

// TestOutputExchangeDeleted deletes the output exchange while the
// pipeline runs, as a Pulse administrator or a cleanup job would: the
// next publish finds it missing, the pipeline declares its topology
// again, and every following message is published; the retries back off
// and the log stays short.
func TestOutputExchangeDeleted(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	rn, logs := startLogged(t, w.config(w.pulseUser()))
	stats := rn.Stats("build")
	output := pulse.ExchangeName(w.client, "build/normalized")
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	distinct := func(i int) []byte { return append([]byte(fmt.Sprintf(`{"copy": %d, `, i)), body[1:]...) }

	w.publishRaw(key, distinct(0))
	for stats.Published.Load() < 1 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := w.admin.ExchangeDelete(output, false, false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		w.publishRaw(key, distinct(i))
	}
	deadline := time.Now().Add(30 * time.Second)
	for stats.Published.Load() < 11 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := stats.Published.Load(); got != 11 {
		t.Fatalf("%d of 11 outputs confirmed within 30s of the output exchange's deletion", got)
	}
	if stats.Retried.Load() == 0 || stats.Parked.Load() != 0 {
		t.Errorf("retried %d, parked %d; want the publish that found the exchange gone retried, nothing parked", stats.Retried.Load(), stats.Parked.Load())
	}
	// The exchange is back, and what follows reaches its consumers.
	main := w.probe(output, "build.#")
	w.publishRaw(key, distinct(11))
	if d := receive(t, main, "the output exchange after it was declared again"); d.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
		t.Errorf("routing key %q", d.RoutingKey)
	}
	if lines := strings.Count(logs.String(), "\n"); lines > 20 {
		t.Errorf("%d log lines for one deleted exchange:\n%s", lines, logs.String())
	}
	t.Logf("11 outputs confirmed after the deletion, %d retries, %d log lines", stats.Retried.Load(), strings.Count(logs.String(), "\n"))
}

// TestStartsBeforeTheBroker starts "run" while nothing listens on the
// broker's port: it keeps trying, with backoff, says so in its log
// without the password, serves /healthz 200 and /readyz 503, and once the
// broker answers (a proxy to it opens on that port) it becomes ready and
// translates.
func TestStartsBeforeTheBroker(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	port := freeAddress(t)
	httpPort := freeAddress(t)
	connection := strings.Replace(w.pulseUser(), "127.0.0.1:5672", port, 1)
	if connection == w.pulseUser() {
		t.Fatalf("the test broker URL %s does not use 127.0.0.1:5672", w.pulseUser())
	}
	proc := w.launchTranslator(w.configText(connection, "[builtin:buildbot.yaml]", ""), "--http", httpPort)
	base := "http://" + httpPort
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", httpPort); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("--http %s did not open:\n%s", httpPort, proc.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz while waiting for the broker: %d, want 200", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz while waiting for the broker: %d, want 503", code)
	}
	select {
	case <-proc.done:
		t.Fatalf("run exited while the broker was not there:\n%s", proc.logs.String())
	default:
	}
	attempts := strings.Count(proc.logs.String(), "cannot connect to the broker")
	if attempts < 2 {
		t.Errorf("%d attempts logged in 2s", attempts)
	}

	proxy(t, port, "127.0.0.1:5672")
	opened := time.Now()
	for {
		if code, body := get(t, base+"/readyz"); code == 200 {
			if !strings.Contains(body, ":xxxxx@") {
				t.Errorf("/readyz says %q; want the node, without its password", body)
			}
			break
		}
		if time.Since(opened) > 45*time.Second {
			t.Fatalf("not ready within 45s of the broker answering:\n%s", proc.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d attempts logged while the port was closed; ready %s after it opened", attempts, time.Since(opened).Round(time.Millisecond))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key, body)
	receive(t, main, "the output exchange")
}

// freeAddress returns a local address nothing listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// proxy forwards connections to from on to to, until the test ends.
func proxy(t *testing.T, from, to string) {
	t.Helper()
	ln, err := net.Listen("tcp", from)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				in.Close()
				continue
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
			go func() { <-ctx.Done(); in.Close(); out.Close() }()
		}
	}()
}
