package runner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// memoryAlarm is the Erlang term of this node's memory alarm.
const memoryAlarm = "{resource_limit, memory, node()}"

// alarmTimer names, on the broker, the timer that clears the alarm should
// the test die first.
const alarmTimer = "pulsetranslator_test_alarm_timer"

// raiseMemoryAlarm raises RabbitMQ's memory alarm, as the broker does when
// it runs low on memory: every connection that publishes is blocked
// (connection.blocked) until the alarm clears. It returns the function
// that clears it, which also runs when the test ends; the broker clears
// it a minute later in any case. The alarm is the whole node's: it is
// raised only on the world's node of its own.
func raiseMemoryAlarm(t *testing.T, w *world) (clear func()) {
	t.Helper()
	eval := func(expr string) error {
		out, err := w.ctlCommand("eval", expr).CombinedOutput()
		if err != nil {
			return fmt.Errorf("rabbitmqctl eval %s: %v\n%s", expr, err, out)
		}
		return nil
	}
	// The broker clears it by itself after a minute too, should this
	// process die before its cleanup runs; the test's own clear cancels
	// that timer, which would otherwise clear the alarm of a run started
	// within the minute (and fail it: outputs published during "the alarm").
	if err := eval("rabbit_alarm:set_alarm({" + memoryAlarm + ", []}), " +
		"{ok, T} = timer:apply_after(60000, rabbit_alarm, clear_alarm, [" + memoryAlarm + "]), " +
		"persistent_term:put(" + alarmTimer + ", T)."); err != nil {
		t.Fatal(err)
	}
	cleared := false
	clear = func() {
		if cleared {
			return
		}
		cleared = true
		if err := eval("timer:cancel(persistent_term:get(" + alarmTimer + ", none)), " +
			"rabbit_alarm:clear_alarm(" + memoryAlarm + ")."); err != nil {
			t.Errorf("%v: the broker's memory alarm may still be up; clear it with that command", err)
		}
	}
	t.Cleanup(clear)
	return clear
}

// TestMemoryAlarmParksNothing raises RabbitMQ's memory alarm while the
// translator has messages in hand. The broker blocks the translator's
// publishes; with a publish timeout of 1 s and 2 attempts, blocked time
// counted as waiting for confirms would park every message as
// unpublishable within seconds. Instead nothing is parked, retried or
// sent twice: once the alarm clears, every output arrives, once. The
// metrics, /api/status and the live page say the broker blocks
// publishing while it does.
func TestMemoryAlarmParksNothing(t *testing.T) {
	w := newWorldOnOwnNode(t)
	// The embedded default's shape, a pipeline that waits for logs. An
	// output without a confirm in time goes to a wait queue, so blocked
	// time counted would also send every message there.
	store, text := w.readyLogsConfig()
	text = strings.Replace(text, "publish_timeout: 10s", "publish_timeout: 1s\npublish_attempts: 2", 1)

	// A first run declares the topology; the inputs then wait in the
	// input queue for the second, started during the alarm.
	first, err := runner.New(w.parse(text), translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilStopped(t, first)()
	const inputs = 30
	w.publishGated(store, "a", inputs)
	outputs := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#")

	clearAlarm := raiseMemoryAlarm(t, w)
	rn, logs, srv := startServed(t, w.parse(text))
	const blocked = 6 * time.Second
	time.Sleep(blocked)
	if _, text := get(t, srv.URL+"/metrics"); !strings.Contains(text, "pulsetranslator_broker_blocked 1") {
		t.Errorf("/metrics during the alarm lacks pulsetranslator_broker_blocked 1")
	}
	if status := statusOf(t, srv.URL); !strings.Contains(status, `"blocked":true`) {
		t.Errorf("/api/status during the alarm lacks \"blocked\":true: %.300s", status)
	}
	const shown = "RabbitMQ blocks publishing (a memory or disk alarm)"
	if dom := string(headless(t, chromium(t), srv.URL+"/", 2*time.Second, "--dump-dom")); !strings.Contains(dom, shown) {
		t.Errorf("the live page during the alarm does not say %q", shown)
	}
	stats := rn.Stats("build")
	if stats.Published.Load() != 0 || len(outputs) != 0 {
		t.Fatalf("published %d outputs while the broker's memory alarm was up; the test cannot tell what it means", stats.Published.Load())
	}
	if !strings.Contains(logs.String(), "RabbitMQ blocked publishing") {
		t.Errorf("the log does not say RabbitMQ blocked publishing:\n%s", logs.String())
	}
	clearAlarm()

	ids := map[string]int{}
	for len(ids) < inputs {
		d := receive(t, outputs, fmt.Sprintf("output %d of %d, after the alarm cleared", len(ids)+1, inputs))
		ids[d.MessageId]++
	}
	for quiet := time.After(2 * time.Second); ; {
		select {
		case d := <-outputs:
			ids[d.MessageId]++
			continue
		case <-quiet:
		}
		break
	}
	duplicates := 0
	for _, n := range ids {
		duplicates += n - 1
	}
	if len(ids) != inputs || duplicates != 0 || stats.Parked.Load() != 0 || stats.Retried.Load() != 0 || stats.Waited.Load() != 0 {
		t.Errorf("after a %s memory alarm: %d distinct outputs of %d, %d duplicates, %d parked, %d publishes retried, %d sent to a wait queue; want every output once, nothing parked, retried or waiting",
			blocked, len(ids), inputs, duplicates, stats.Parked.Load(), stats.Retried.Load(), stats.Waited.Load())
	}
	if _, text := get(t, srv.URL+"/metrics"); !strings.Contains(text, "pulsetranslator_broker_blocked 0") {
		t.Errorf("/metrics after the alarm lacks pulsetranslator_broker_blocked 0")
	}
	if q, err := w.inspect(pulse.DeadQueue(w.client, "build")); err != nil || q.Messages != 0 {
		t.Errorf("the dead queue holds %d (%v); want 0", q.Messages, err)
	}
}
