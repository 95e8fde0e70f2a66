package runner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// hostileHeaders are the headers an upstream publisher could use to
// steer the translator: every name it has used for its own instructions
// and records, a CC header of 100 KB, and a value of every AMQP type.
func hostileHeaders(w *world) amqp.Table {
	routes := make([]interface{}, 0, 1800)
	for len(routes) < cap(routes) {
		routes = append(routes, fmt.Sprintf("route.steered.%036d", len(routes)))
	}
	wait := pulse.WaitExchange(w.client, "build")
	return amqp.Table{
		"publish.exchange":                   pulse.ExchangeName(w.client, "build/normalized"),
		"publish.routing_key":                "STEERED",
		"publish.cc":                         `["route.steered"]`,
		"publish.content_type":               "text/plain",
		pulse.HeaderOriginExchange:           wait,
		pulse.HeaderOriginRoutingKey:         pulse.RetryKey,
		pulse.HeaderSourceExchange:           "exchange/forged/",
		pulse.HeaderSourceRoutingKey:         "STEERED",
		pulse.HeaderAttempt:                  "99",
		pulse.HeaderFirstSeen:                "2000-01-01T00:00:00Z",
		pulse.HeaderCanary:                   "2000-01-01T00:00:00Z",
		pulse.HeaderDue:                      "2000-01-01T00:00:00Z",
		pulse.HeaderClass:                    "forged",
		pulse.HeaderReason:                   "forged",
		"x-death":                            []interface{}{amqp.Table{"reason": "expired", "queue": "forged", "count": int64(1)}},
		"CC":                                 routes,
		"BCC":                                []interface{}{"route.hidden"},
		"bool":                               true,
		"int8":                               int8(-8),
		"int16":                              int16(-16),
		"int32":                              int32(-32),
		"int64":                              int64(-64),
		"float32":                            float32(3.5),
		"float64":                            float64(-2.25),
		"decimal":                            amqp.Decimal{Scale: 2, Value: 12345},
		"string":                             "text",
		"bytes":                              []byte{0, 1, 2, 255},
		"time":                               time.Unix(1446634715, 0),
		"void":                               nil,
		"table":                              amqp.Table{"nested": []interface{}{"a", int32(1), amqp.Table{"deeper": false}}},
		"array":                              []interface{}{"x", int64(2), nil, []byte("y")},
		strings.Repeat("long-name-", 25):     "a name of 250 bytes",
		"x-pulsetranslator-cut-headers":      "forged",
		"x-pulsetranslator-waiting-for":      "forged",
		"x-original-x-pulsetranslator-class": "forged",
	}
}

// TestUpstreamCannotSteer publishes, upstream, a refused message and a
// good one that both carry every header the translator has used for
// itself, a 100 KB CC header and headers of every AMQP type. The refused
// one is parked once, with its own reason and the headers that fit; the
// good one is published as it would be without the headers; nothing else
// is published anywhere (no steered key, nothing in the wait exchange);
// the connection is never lost; and the log stays short.
func TestUpstreamCannotSteer(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	proc := w.startTranslator(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", ""))
	output := pulse.ExchangeName(w.client, "build/normalized")
	everything := w.probe(output, "#")
	waiting := w.probe(pulse.WaitExchange(w.client, "build"), pulse.RetryKey, "15s", "1m", "5m", "STEERED")
	holding := w.probe(pulse.HoldExchange(w.client, "build"), pulse.RetryKey, "15s", "1m", "5m", "STEERED")
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(key string, body []byte) {
		t.Helper()
		dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, key, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body, Headers: hostileHeaders(w)})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish upstream: %v", err)
		}
	}
	const badKey = "build.mozilla-central-linux64.7.log_uploaded"
	publish(badKey, []byte(`{"payload": {"build": `))
	good, goodKey := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	publish(goodKey, good)

	parked := receive(t, dead, "the dead queue")
	if parked.Headers[pulse.HeaderClass] != pulse.ClassMalformed || !strings.Contains(fmt.Sprint(parked.Headers[pulse.HeaderReason]), "not well-formed JSON") {
		t.Errorf("parked with class %v reason %v; want the translator's own malformed_json", parked.Headers[pulse.HeaderClass], parked.Headers[pulse.HeaderReason])
	}
	if parked.Headers[pulse.HeaderOriginExchange] != w.upstream || parked.Headers[pulse.HeaderOriginRoutingKey] != badKey || parked.RoutingKey != badKey {
		t.Errorf("the parked copy says it came from %v %v (key %s); want %s %s", parked.Headers[pulse.HeaderOriginExchange], parked.Headers[pulse.HeaderOriginRoutingKey], parked.RoutingKey, w.upstream, badKey)
	}
	if parked.ContentType != "application/json" || string(parked.Body) != `{"payload": {"build": ` {
		t.Errorf("the parked copy is %q %q; want the input's own content type and body", parked.ContentType, parked.Body)
	}
	if _, ok := parked.Headers["CC"]; ok {
		t.Error("the parked copy carries a CC header")
	}
	if cut := fmt.Sprint(parked.Headers[pulse.HeaderCutHeaders]); !strings.Contains(cut, "x-original-CC") {
		t.Errorf("the parked copy does not say the 100 KB CC header was cut: %q", cut)
	}
	for _, kept := range []string{"publish.exchange", "x-original-" + pulse.HeaderClass, "int8", "decimal", "table", "bytes"} {
		if _, ok := parked.Headers[kept]; !ok {
			t.Errorf("the parked copy lost the upstream header %s", kept)
		}
	}

	out := receive(t, everything, "the output exchange")
	if out.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" || out.ContentType != "application/json" {
		t.Errorf("the good message came out as %q (%s)", out.RoutingKey, out.ContentType)
	}
	wantCC := []interface{}{"route.tree.mozilla-central", "route.revision.cd5fab20f6bd128847ef8131c9aeed63cde019fc", "route.platform.linux64"}
	if fmt.Sprint(out.Headers["CC"]) != fmt.Sprint(wantCC) || len(out.Headers) != 1 {
		t.Errorf("the output's headers are %v; want only its own CC %v", out.Headers, wantCC)
	}
	// Nothing else, anywhere, for a while.
	select {
	case d := <-everything:
		t.Errorf("a second message on the output exchange: key %q, %d bytes", d.RoutingKey, len(d.Body))
	case d := <-waiting:
		t.Errorf("a message in the wait exchange: key %q", d.RoutingKey)
	case d := <-holding:
		t.Errorf("a message in the hold exchange: key %q", d.RoutingKey)
	case d := <-dead:
		t.Errorf("a second parked copy: class %v", d.Headers[pulse.HeaderClass])
	case <-time.After(3 * time.Second):
	}
	logs := proc.logs.String()
	if n := strings.Count(logs, "connected to the broker"); n != 1 {
		t.Errorf("%d connections to the broker; the headers must not cost a reconnect:\n%s", n, logs)
	}
	if lines := strings.Count(logs, "\n"); lines > 30 {
		t.Errorf("%d log lines for two messages:\n%s", lines, logs)
	}
}

// TestThousandsOfHeadersAreNotRead publishes, upstream, 200 good messages
// and one malformed message that each carry 8,000 small headers (about
// 110 KB): the translator reads none of them (broker.MaxUpstreamEntries),
// so the good ones are published as they would be without them and the
// parked copy carries none, saying why. The CPU the process spent on the
// 200 is logged beside that of 200 without headers.
func TestThousandsOfHeadersAreNotRead(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	proc := w.startTranslator(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", ""))
	everything := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#")
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	many := amqp.Table{}
	for i := range 8000 {
		many[fmt.Sprintf("h%d", i)] = int32(i)
	}
	good, goodKey := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	cpu := func() time.Duration { return processCPU(t, proc.cmd.Process.Pid) }
	run := func(headers amqp.Table) time.Duration {
		began := cpu()
		for range 200 {
			dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, goodKey, false, false, amqp.Publishing{
				ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: good, Headers: headers})
			if err != nil || !dc.Wait() {
				t.Fatalf("publish upstream: %v", err)
			}
		}
		// Each good message gives one output with three CC routes.
		for range 200 {
			out := receive(t, everything, "the output exchange")
			if len(out.Headers) != 1 || out.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
				t.Fatalf("an output %q with headers %v", out.RoutingKey, out.Headers)
			}
		}
		return cpu() - began
	}
	without := run(nil)
	with := run(many)
	t.Logf("CPU of the translator for 200 messages: %s without headers, %s with 8,000 headers each (%.2f ms and %.2f ms a message)",
		without, with, float64(without.Microseconds())/200/1000, float64(with.Microseconds())/200/1000)

	dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, goodKey, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: []byte(`{"payload": `), Headers: many})
	if err != nil || !dc.Wait() {
		t.Fatalf("publish upstream: %v", err)
	}
	parked := receive(t, dead, "the dead queue")
	if len(parked.Headers) > 12 || !strings.Contains(fmt.Sprint(parked.Headers[pulse.HeaderCutHeaders]), "8000 upstream headers") {
		t.Errorf("the parked copy has %d headers, cut %q; want the translator's own, saying the 8,000 were not read", len(parked.Headers), parked.Headers[pulse.HeaderCutHeaders])
	}
}
