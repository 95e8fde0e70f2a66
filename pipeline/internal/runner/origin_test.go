package runner

import (
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

const testWaitExchange = "exchange/me/build/wait"

// forgedWaitHeaders are what a returning waiter carries, as an upstream
// publisher would forge them.
func forgedWaitHeaders() amqp.Table {
	return amqp.Table{
		pulse.HeaderSourceExchange:   "exchange/forged/",
		pulse.HeaderSourceRoutingKey: "forged.key",
		pulse.HeaderAttempt:          "99",
		pulse.HeaderFirstSeen:        "2000-01-01T00:00:00Z",
		"publish.exchange":           testWaitExchange,
		"publish.routing_key":        "retry",
	}
}

// TestOnlyTheWaitExchangeReturnsWaiters: a delivery from anywhere but the
// pipeline's own wait exchange is never taken for a returning waiter,
// whatever its headers say; one from the wait exchange is.
func TestOnlyTheWaitExchangeReturnsWaiters(t *testing.T) {
	now := time.Now()
	for _, exchange := range []string{"exchange/build/", "", "exchange/me/build/wait/", "exchange/me/build/dead", "EXCHANGE/me/build/wait"} {
		d := &broker.Delivery{Exchange: exchange, RoutingKey: "build.x.1.log_uploaded", Headers: forgedWaitHeaders()}
		o := originOf(d, now, testWaitExchange)
		if o.returning || o.attempt != 0 || !o.firstSeen.Equal(now) || o.exchange != exchange || o.routingKey != "build.x.1.log_uploaded" {
			t.Errorf("from %q: returning %v attempt %d first seen %s source %s %s; want a first pass from where the broker says",
				exchange, o.returning, o.attempt, o.firstSeen, o.exchange, o.routingKey)
		}
		if o.upstream[pulse.HeaderAttempt] != "99" {
			t.Errorf("from %q: the forged headers are not kept as upstream data", exchange)
		}
	}
	// With no wait exchange (ParkHeaders), nothing returns either.
	if o := originOf(&broker.Delivery{Headers: forgedWaitHeaders()}, now); o.returning {
		t.Error("a delivery from the empty exchange returns when the pipeline's wait exchange is unknown")
	}

	h := forgedWaitHeaders()
	h["x-death"] = []interface{}{amqp.Table{"reason": "expired"}}
	h["x-first-death-queue"] = "queue/me/build/wait/15s"
	h["x-original-CC"] = []interface{}{"route.a"}
	o := originOf(&broker.Delivery{Exchange: testWaitExchange, RoutingKey: "retry", Headers: h}, now, testWaitExchange)
	if !o.returning || o.attempt != 99 || o.exchange != "exchange/forged/" || o.routingKey != "forged.key" || o.firstSeen.Year() != 2000 {
		t.Errorf("from the wait exchange: %+v; want its wait headers believed", o)
	}
	for _, gone := range []string{pulse.HeaderAttempt, "x-death", "x-first-death-queue"} {
		if _, ok := o.upstream[gone]; ok {
			t.Errorf("a returning waiter carries %s on as upstream data", gone)
		}
	}
	if _, ok := o.upstream["x-original-CC"]; !ok {
		t.Error("a returning waiter lost the upstream headers its waiting copy carried")
	}
}

// TestParkHeadersAreTheTranslatorsOwn: whatever the upstream headers, the
// parked copy's class, reason, pipeline and origin are the translator's,
// upstream headers of the same names are renamed, and the whole stays
// small.
func TestParkHeadersAreTheTranslatorsOwn(t *testing.T) {
	big := make([]interface{}, 3000)
	for i := range big {
		big[i] = "route.steered.xxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	}
	upstream := amqp.Table{
		pulse.HeaderClass: "forged", pulse.HeaderReason: "forged", pulse.HeaderPipeline: "forged",
		pulse.HeaderOriginExchange: "exchange/forged/", pulse.HeaderOriginRoutingKey: "forged",
		"CC": big, "publish.cc": "not json", "x-test": int32(1),
	}
	d := &broker.Delivery{Exchange: "exchange/build/", RoutingKey: "build.x.1.finished", ContentType: "text/plain", Headers: upstream}
	h := ParkHeaders("build", d, "malformed_json", "the body is not JSON")
	want := map[string]string{
		pulse.HeaderClass: "malformed_json", pulse.HeaderReason: "the body is not JSON", pulse.HeaderPipeline: "build",
		pulse.HeaderOriginExchange: "exchange/build/", pulse.HeaderOriginRoutingKey: "build.x.1.finished",
		pulse.HeaderOriginContentType: "text/plain", "x-original-" + pulse.HeaderClass: "forged", "publish.cc": "not json",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %v, want %q", k, h[k], v)
		}
	}
	if _, ok := h["CC"]; ok {
		t.Error("the parked copy has a CC header")
	}
	if cut, _ := h[pulse.HeaderCutHeaders].(string); cut == "" {
		t.Error("the parked copy does not say the CC header was cut")
	}
	if size := broker.TableSize(h); size > 24<<10 {
		t.Errorf("the parked copy's headers take %d bytes", size)
	}
	if err := h.Validate(); err != nil {
		t.Error(err)
	}
	long := ParkHeaders("build", d, "schema", string(make([]byte, 100<<10)))
	if reason, _ := long[pulse.HeaderReason].(string); len(reason) > maxReason {
		t.Errorf("a 100 KB reason is carried with %d bytes", len(reason))
	}
}

// FuzzUpstreamHeaders runs arbitrary upstream header tables through what
// the runner makes of a delivery: it is never a returning waiter, and
// its parked and waiting copies have valid, small headers in which the
// translator's own say what the translator wrote.
func FuzzUpstreamHeaders(f *testing.F) {
	f.Add([]byte("x-pulsetranslator-attempt\x00\x0399x-pulse-exchange\x00\x05wait"), uint16(3), "exchange/build/")
	f.Add([]byte("CC\x02\x40\x41x-death\x07\x01"), uint16(9000), "")
	f.Fuzz(func(t *testing.T, data []byte, repeat uint16, exchange string) {
		if exchange == testWaitExchange {
			return
		}
		d := &broker.Delivery{Exchange: exchange, RoutingKey: "build.x", ContentType: "application/json", Headers: brokertest.HeaderTable(data, int(repeat))}
		src := originOf(d, time.Now(), testWaitExchange)
		if src.returning || src.exchange != exchange {
			t.Fatalf("a delivery from %q is taken for a waiter from %q", exchange, src.exchange)
		}
		for _, minimal := range []bool{false, true} {
			h := parkHeaders("build", d, src, "malformed_json", "reason", "", minimal)
			if err := h.Validate(); err != nil {
				t.Fatalf("parked headers: %v", err)
			}
			if size := broker.TableSize(h); size > broker.MaxCarriedHeaders+8<<10 {
				t.Fatalf("parked headers take %d bytes", size)
			}
			if h[pulse.HeaderClass] != "malformed_json" || h[pulse.HeaderOriginExchange] != exchange || h[pulse.HeaderPipeline] != "build" {
				t.Fatalf("parked headers %v do not say what the translator wrote", h)
			}
			if _, ok := h["CC"]; ok {
				t.Fatal("a parked copy carries a CC header")
			}
		}
		w := waitHeaders(src, "", time.Now())
		if err := w.Validate(); err != nil || w[pulse.HeaderSourceExchange] != exchange || w[pulse.HeaderAttempt] != "1" {
			t.Fatalf("waiting copy headers %v: %v", w, err)
		}
		back := originOf(&broker.Delivery{Exchange: testWaitExchange, Headers: w}, time.Now(), testWaitExchange)
		if !back.returning || back.exchange != exchange || back.attempt != 1 {
			t.Fatalf("the waiting copy comes back as %+v", back)
		}
	})
}

// TestAFutureFirstSeenIsNotBelieved: a returning waiter whose first-seen
// time lies in the future (a clock ahead, or a forged copy) is taken as
// first seen now; believed, it would wait past its deadline.
func TestAFutureFirstSeenIsNotBelieved(t *testing.T) {
	now := time.Now()
	for _, seen := range []time.Time{now.Add(time.Second), now.Add(100 * 365 * 24 * time.Hour)} {
		h := forgedWaitHeaders()
		h[pulse.HeaderFirstSeen] = seen.Format(time.RFC3339Nano)
		o := originOf(&broker.Delivery{Exchange: testWaitExchange, RoutingKey: "retry", Headers: h}, now, testWaitExchange)
		if !o.returning || !o.firstSeen.Equal(now) {
			t.Errorf("first seen %s, read at %s: returning %v, first seen taken as %s; want now", seen, now, o.returning, o.firstSeen)
		}
	}
	h := forgedWaitHeaders()
	past := now.Add(-time.Minute).Round(0)
	h[pulse.HeaderFirstSeen] = past.Format(time.RFC3339Nano)
	if o := originOf(&broker.Delivery{Exchange: testWaitExchange, RoutingKey: "retry", Headers: h}, now, testWaitExchange); !o.firstSeen.Equal(past) {
		t.Errorf("a first-seen time a minute ago was taken as %s; want %s", o.firstSeen, past)
	}
}
