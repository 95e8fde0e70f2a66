package gate_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

// switchableHost is a log host that, while hang is set, accepts requests
// and never answers them (until the test ends), and otherwise answers
// 200. It counts the requests it was sent.
type switchableHost struct {
	URL      string
	hang     atomic.Bool
	requests atomic.Int64
}

func newSwitchableHost(t *testing.T) *switchableHost {
	t.Helper()
	h := &switchableHost{}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		if h.hang.Load() {
			select {
			case <-done:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	h.URL = srv.URL
	return h
}

// within runs check with a budget of d.
func within(c *gate.Checker, d time.Duration, raw string) gate.Result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Check(ctx, raw)
}

// TestHangingHostTrips: a host that stops answering is not asked once
// five checks in a row missed their budget: its next checks end at once,
// skipped, without a request, until the cooldown ends; then a single
// check probes it, while the others are still skipped; a probe it does
// not answer doubles the cooldown, and one it answers puts it back in use.
func TestHangingHostTrips(t *testing.T) {
	h := newSwitchableHost(t)
	h.hang.Store(true)
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, Timeout: 5 * time.Second, HostCooldown: 300 * time.Millisecond})
	for i := range 5 {
		if r := within(c, 50*time.Millisecond, fmt.Sprintf("%s/%d", h.URL, i)); r.Outcome != gate.Failed {
			t.Fatalf("check %d of a hanging host: %s %s; want failed at the budget", i, r.Outcome, r.Detail)
		}
	}
	sent := h.requests.Load()
	began := time.Now()
	r := within(c, time.Second, h.URL+"/next")
	if r.Outcome != gate.Skipped || !strings.Contains(r.Detail, "did not answer its last 5 checks") || time.Since(began) > 20*time.Millisecond {
		t.Fatalf("after 5 misses: %s %q in %s; want skipped at once", r.Outcome, r.Detail, time.Since(began))
	}
	if c.FailingHosts() != 1 || h.requests.Load() != sent {
		t.Errorf("failing hosts %d, requests %d then %d; want 1 failing and no request", c.FailingHosts(), sent, h.requests.Load())
	}
	time.Sleep(350 * time.Millisecond)
	var probe gate.Result
	var wg sync.WaitGroup
	wg.Go(func() { probe = within(c, 100*time.Millisecond, h.URL+"/probe") })
	time.Sleep(30 * time.Millisecond)
	if r := within(c, time.Second, h.URL+"/beside"); r.Outcome != gate.Skipped || !strings.Contains(r.Detail, "probing") {
		t.Errorf("beside the probe: %s %q; want skipped", r.Outcome, r.Detail)
	}
	wg.Wait()
	if probe.Outcome != gate.Failed || h.requests.Load() != sent+1 {
		t.Errorf("the probe: %s %q, %d requests; want one request, unanswered", probe.Outcome, probe.Detail, h.requests.Load()-sent)
	}
	// Unanswered, the probe opened the breaker again, for twice as long.
	time.Sleep(350 * time.Millisecond)
	if r := within(c, time.Second, h.URL+"/too-soon"); r.Outcome != gate.Skipped {
		t.Errorf("350ms after a failed probe (cooldown 600ms): %s %q; want skipped", r.Outcome, r.Detail)
	}
	h.hang.Store(false)
	time.Sleep(300 * time.Millisecond)
	if r := within(c, time.Second, h.URL+"/back"); r.Outcome != gate.Ready {
		t.Errorf("the probe of a host answering again: %s %q; want ready", r.Outcome, r.Detail)
	}
	if r := within(c, time.Second, h.URL+"/after"); r.Outcome != gate.Ready || c.FailingHosts() != 0 {
		t.Errorf("after a good probe: %s %q, %d failing; want ready", r.Outcome, r.Detail, c.FailingHosts())
	}
}

// TestSlowHostBoundsItsWaiters: a host that has answered none of its
// checks in flight for HostSlowAfter has at most per_host more waiting
// for its slots; a check beyond them is skipped at once; so one such host
// holds at most 2 x per_host messages. Other hosts are not held up.
func TestSlowHostBoundsItsWaiters(t *testing.T) {
	h := newSwitchableHost(t)
	h.hang.Store(true)
	other, _ := countingServer(t)
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, PerHost: 2, Timeout: 5 * time.Second, HostSlowAfter: 100 * time.Millisecond})
	var wg sync.WaitGroup
	var held atomic.Int64
	for i := range 4 { // two in flight, two waiting
		wg.Go(func() {
			held.Add(1)
			within(c, 2*time.Second, fmt.Sprintf("%s/held-%d", h.URL, i))
		})
	}
	time.Sleep(200 * time.Millisecond)
	began := time.Now()
	r := within(c, 2*time.Second, h.URL+"/fifth")
	if r.Outcome != gate.Skipped || !strings.Contains(r.Detail, "answered none of its 2 checks in flight") || time.Since(began) > 20*time.Millisecond {
		t.Errorf("a fifth check of a host that answers none: %s %q in %s; want skipped at once", r.Outcome, r.Detail, time.Since(began))
	}
	if r := within(c, time.Second, other.URL+"/x"); r.Outcome != gate.Ready {
		t.Errorf("another host meanwhile: %s %q", r.Outcome, r.Detail)
	}
	if n := h.requests.Load(); n != 2 {
		t.Errorf("the slow host was sent %d requests; want per_host (2)", n)
	}
	wg.Wait()
}

// TestSpellingsOfAHostShareItsSlots: the same host written in other cases,
// with a trailing dot or with its port, is one host for per_host.
func TestSpellingsOfAHostShareItsSlots(t *testing.T) {
	var now, peak atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		now.Add(-1)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if addrs, err := net.LookupHost("localhost"); err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, PerHost: 2, HostSlowAfter: time.Minute})
	spellings := []string{"localhost", "LOCALHOST", "LocalHost", "localhost."}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			raw := fmt.Sprintf("http://%s:%s/%d", spellings[i%len(spellings)], port, i)
			if r := within(c, 10*time.Second, raw); r.Outcome != gate.Ready {
				t.Errorf("%s: %s %s", raw, r.Outcome, r.Detail)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(release)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("%d checks at once of one host written four ways; want per_host (2)", p)
	}
}

// TestHTTP2: a host that offers HTTP/2 over TLS is asked over HTTP/2.
func TestHTTP2(t *testing.T) {
	var proto atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proto.Store(int64(r.ProtoMajor)) }))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	if r := c.Check(context.Background(), srv.URL+"/log"); r.Outcome != gate.Ready || proto.Load() != 2 {
		t.Errorf("%s %s over HTTP/%d; want ready over HTTP/2", r.Outcome, r.Detail, proto.Load())
	}
}

// TestProxyFromEnvironment: with ProxyFromEnvironment, checks go through
// the proxy HTTP_PROXY names (whose own address the policy does not
// cover), and the policy still applies to each URL.
func TestProxyFromEnvironment(t *testing.T) {
	var asked atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.String())
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	c := newChecker(t, gate.Config{Policy: urlpolicy.Policy{Allow: []string{"logs.example"}}, CacheTTL: -1, ProxyFromEnvironment: true})
	if r := c.Check(context.Background(), "http://logs.example/log.txt"); r.Outcome != gate.Ready || asked.Load() != "http://logs.example/log.txt" {
		t.Errorf("through the proxy: %s %s, the proxy was asked for %v", r.Outcome, r.Detail, asked.Load())
	}
	if r := c.Check(context.Background(), "http://elsewhere.example/log.txt"); r.Outcome != gate.Forbidden {
		t.Errorf("a host outside the allow list, through the proxy: %s %s; want forbidden", r.Outcome, r.Detail)
	}
}

// TestTimeoutCountsFromTheSlot: a check's timeout runs from when it gets
// its slot, not from when it began waiting for one: a host that answers
// within the timeout is ready for every check of a burst, however long
// the later ones wait their turn within their budget.
func TestTimeoutCountsFromTheSlot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(200 * time.Millisecond) }))
	t.Cleanup(srv.Close)
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, PerHost: 1, Timeout: 300 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if r := within(c, 2*time.Second, fmt.Sprintf("%s/%d", srv.URL, i)); r.Outcome != gate.Ready {
				t.Errorf("check %d of 3, one at a time, each answered in 200ms: %s %q; want ready", i, r.Outcome, r.Detail)
			}
		})
	}
	wg.Wait()
}
