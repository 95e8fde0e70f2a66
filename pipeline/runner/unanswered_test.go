package runner_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
	"github.com/pulsetranslator/pulsetranslator/pipeline/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// TestQueueThatDoesNotAnswer: a queue whose process does not answer (here
// suspended on the broker for the test; RabbitMQ 3.10 can leave one so
// after a restart) holds back only the readings of the queues' depths.
// The log names the queue, and the other gauges stay current: a message
// held by a hanging log host shows in pulsetranslator_in_flight.
func TestQueueThatDoesNotAnswer(t *testing.T) {
	runner.SetStuckReading(t, 2*time.Second)
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	hanging := hangingHost(t)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	text = strings.Replace(text, "check: {timeout: 2s,", "check: {timeout: 40s, budget: 30s,", 1)
	logs := &brokertest.Logs{}
	rn, err := runner.New(w.parse(text), translator.Default, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHTTP(t, rn)
	runWith(t, rn)
	dead := pipeline.DeadQueue(w.client, "build")
	brokertest.SuspendQueue(t, dead, 40*time.Second)

	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "a queue does not answer") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line names the queue that does not answer within 20s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "queue="+dead) {
		t.Errorf("the log does not name %s:\n%s", dead, logs.String())
	}

	held := gatedBuildAt(t, "http://"+hanging, "hang")
	w.publishRaw(held.key, held.body)
	deadline = time.Now().Add(15 * time.Second)
	for {
		_, text := get(t, srv.URL+"/metrics")
		if strings.Contains(text, `pulsetranslator_in_flight{pipeline="build"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pulsetranslator_in_flight did not show the held message within 15s while a queue did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hangingHost is the address of a host that accepts connections and never
// answers, until the test ends.
func hangingHost(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}
