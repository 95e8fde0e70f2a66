package gate_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

func TestOutcomes(t *testing.T) {
	var heads, gets atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/to-ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://example.invalid/x", http.StatusFound)
	})
	// A server that refuses HEAD: the check falls back to GET and must not
	// read the (here endless) body.
	mux.HandleFunc("/no-head", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		gets.Add(1)
		chunk := []byte(strings.Repeat("log line\n", 1000))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c := newChecker(t, gate.Config{Policy: local, Timeout: 300 * time.Millisecond, CacheTTL: -1})
	cases := []struct {
		path   string
		want   gate.Outcome
		detail string
	}{
		{"/ok", gate.Ready, "OK"},
		{"/missing", gate.NotYet, "404"},
		{"/gone", gate.NotYet, "410"},
		{"/broken", gate.Failed, "502"},
		{"/moved", gate.Ready, "OK"},
		{"/to-ftp", gate.Failed, "only http and https"},
		{"/no-head", gate.Ready, "OK"},
		{"/slow", gate.Failed, "no answer within 300ms"},
	}
	for _, tc := range cases {
		r := c.Check(context.Background(), srv.URL+tc.path)
		if r.Outcome != tc.want || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: %s %q, want %s with %q", tc.path, r.Outcome, r.Detail, tc.want, tc.detail)
		}
	}
	if heads.Load() != 1 || gets.Load() != 1 {
		t.Errorf("no-head: %d HEAD and %d GET, want one each", heads.Load(), gets.Load())
	}
	for _, bad := range []string{"file:///etc/passwd", "ftp://ftp.mozilla.org/x", "/relative/path", "http://"} {
		if r := c.Check(context.Background(), bad); r.Outcome != gate.Forbidden {
			t.Errorf("%s: %s, want forbidden without a request", bad, r.Outcome)
		}
		if urlpolicy.ValidURL(bad) == nil {
			t.Errorf("ValidURL(%q) is nil", bad)
		}
	}
	n := c.Counts()
	if n.Ready.Load() != 3 || n.NotYet.Load() != 2 || n.Failed.Load() != 3 || n.Forbidden.Load() != 4 {
		t.Errorf("counts ready %d not yet %d failed %d forbidden %d, want 3, 2, 3, 4", n.Ready.Load(), n.NotYet.Load(), n.Failed.Load(), n.Forbidden.Load())
	}
}

// TestReadyCache checks ready answers are remembered for the TTL, and
// not-yet answers never are.
func TestReadyCache(t *testing.T) {
	var requests atomic.Int64
	var exists atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if !exists.Load() {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: 200 * time.Millisecond})
	ctx := context.Background()
	for range 2 {
		if r := c.Check(ctx, srv.URL+"/a"); r.Outcome != gate.NotYet {
			t.Fatalf("%s, want not_yet", r.Outcome)
		}
	}
	exists.Store(true)
	first := c.Check(ctx, srv.URL+"/a")
	second := c.Check(ctx, srv.URL+"/a")
	if first.Cached || !second.Cached || second.Outcome != gate.Ready || requests.Load() != 3 {
		t.Errorf("first cached %v, second cached %v (%s), %d requests; want a request for each not-yet and the first ready only",
			first.Cached, second.Cached, second.Outcome, requests.Load())
	}
	time.Sleep(250 * time.Millisecond)
	if r := c.Check(ctx, srv.URL+"/a"); r.Cached || requests.Load() != 4 {
		t.Errorf("after the TTL: cached %v, %d requests; want a fresh request", r.Cached, requests.Load())
	}
	if c.Counts().Cached.Load() != 1 {
		t.Errorf("cached count %d, want 1", c.Counts().Cached.Load())
	}
}

// TestLimits checks no more than PerHost checks reach one host at once,
// and no more than Concurrency overall.
// gauge counts requests in progress and their peak.
type gauge struct{ now, peak atomic.Int64 }

// enter counts one more request in progress.
func (g *gauge) enter() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// checkAllReady checks urls with c, batch at a time on goroutines of
// their own, expecting each ready, and returns a function that waits for
// them all.
func checkAllReady(t *testing.T, c *gate.Checker, urls []string, batch int) (wait func()) {
	var wg sync.WaitGroup
	for i := 0; i < len(urls); i += batch {
		wg.Go(func() {
			for _, r := range c.CheckAll(context.Background(), urls[i:min(i+batch, len(urls))]) {
				if r.Outcome != gate.Ready {
					t.Errorf("%s: %s %s", r.URL, r.Outcome, r.Detail)
				}
			}
		})
	}
	return wg.Wait
}

func TestLimits(t *testing.T) {
	var a, b, all gauge
	track := func(g *gauge) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.enter()
			all.enter()
			time.Sleep(20 * time.Millisecond)
			g.now.Add(-1)
			all.now.Add(-1)
		})
	}
	srvA, srvB := httptest.NewServer(track(&a)), httptest.NewServer(track(&b))
	defer srvA.Close()
	defer srvB.Close()
	// Each check holds a slot for its whole request, so the peaks
	// measure the checker's slots.
	c := newChecker(t, gate.Config{Policy: local, Concurrency: 5, PerHost: 3, CacheTTL: -1})
	var urls []string
	for i := range 40 {
		urls = append(urls, fmt.Sprintf("%s/%d", srvA.URL, i), fmt.Sprintf("%s/%d", srvB.URL, i))
	}
	checkAllReady(t, c, urls, 8)()
	if a.peak.Load() > 3 || b.peak.Load() > 3 || all.peak.Load() > 5 || all.peak.Load() < 4 {
		t.Errorf("peak per host %d and %d, overall %d; want at most 3 per host and 4 or 5 overall",
			a.peak.Load(), b.peak.Load(), all.peak.Load())
	}
}

// TestRedirectTakesTheTargetsSlots: a check that a redirect leads to
// another host holds a slot of that host, so per_host bounds what a host
// is sent whichever hosts' URLs lead to it; and a check that waits for
// such a slot holds none of the others' meanwhile, even while the host it
// waits for answers nobody.
func TestRedirectTakesTheTargetsSlots(t *testing.T) {
	var target gauge
	answer := make(chan struct{})
	held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target.enter()
		<-answer
		target.now.Add(-1)
	}))
	defer held.Close()
	redirector := func() *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, held.URL+r.URL.Path, http.StatusFound)
		}))
	}
	a, b := redirector(), redirector()
	defer a.Close()
	defer b.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()

	// Two redirecting hosts could fill every overall slot (2 x 3 = 6).
	c := newChecker(t, gate.Config{Policy: local, Concurrency: 6, PerHost: 3, CacheTTL: -1})
	var urls []string
	for i := range 15 {
		urls = append(urls, fmt.Sprintf("%s/%d", a.URL, i), fmt.Sprintf("%s/%d", b.URL, i))
	}
	wait := checkAllReady(t, c, urls, 6)
	for deadline := time.Now().Add(10 * time.Second); target.now.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(answer)
			t.Fatalf("the target has %d requests after 10s; want 3 (per_host)", target.now.Load())
		}
	}
	time.Sleep(50 * time.Millisecond) // the rest reach the target's slots
	// While the target holds its slots unanswered, a check of a host of
	// its own finds an overall slot.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if r := c.Check(ctx, other.URL+"/x"); r.Outcome != gate.Ready {
		t.Errorf("another host, while redirected checks wait for a host that does not answer: %s %s; want ready", r.Outcome, r.Detail)
	}
	close(answer)
	wait()
	if p := target.peak.Load(); p != 3 {
		t.Errorf("the host two others redirect to had %d requests at once; want per_host (3)", p)
	}
}

// TestLateRedirectIsFollowed: a redirect that comes after the caller's
// budget is still followed, when the host it leads to has a free slot,
// and the ready answer is remembered for the message's next check.
func TestLateRedirectIsFollowed(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	late := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
	}))
	defer late.Close()
	c := newChecker(t, gate.Config{Policy: local, Timeout: 5 * time.Second})
	var urls []string
	for i := range 8 {
		urls = append(urls, fmt.Sprintf("%s/%d", late.URL, i))
	}
	check := func() []gate.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		return c.CheckAll(ctx, urls)
	}
	for _, r := range check() {
		if r.Outcome != gate.Failed {
			t.Fatalf("%s within a 30ms budget, its redirect 100ms away: %s %s; want no answer within the budget", r.URL, r.Outcome, r.Detail)
		}
	}
	time.Sleep(time.Second) // the redirects come at 100ms
	for _, r := range check() {
		if r.Outcome != gate.Ready || !r.Cached {
			t.Errorf("%s after its late redirect was followed: %s %s (cached %v); want ready from the cache", r.URL, r.Outcome, r.Detail, r.Cached)
		}
	}
}

// TestBudget: a caller stops waiting when its budget is spent, for a slot
// or for an answer, while a request already sent goes on and its ready
// answer is remembered for the next check; other hosts' checks are not
// held up meanwhile.
func TestBudget(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	defer slow.Close()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer fast.Close()
	c := newChecker(t, gate.Config{Policy: local, Timeout: 5 * time.Second, PerHost: 1, Concurrency: 4})

	budget := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	// Two checks of the slow host at once, one slot: one waits for the
	// answer, the other for the slot; both give up at 50ms.
	began := time.Now()
	results := c.CheckAll(budget(50*time.Millisecond), []string{slow.URL + "/a", slow.URL + "/b", fast.URL + "/c"})
	if took := time.Since(began); took > 250*time.Millisecond {
		t.Errorf("a 50ms budget took %s", took)
	}
	if results[0].Outcome != gate.Failed || !strings.Contains(results[0].Detail+results[1].Detail, "no answer within the budget") ||
		!strings.Contains(results[0].Detail+results[1].Detail, "no check slot free for 127.0.0.1:") {
		t.Errorf("slow host within 50ms: %+v, %+v; want one without an answer and one without a slot", results[0], results[1])
	}
	if results[2].Outcome != gate.Ready {
		t.Errorf("the fast host, checked beside the slow one: %+v", results[2])
	}
	// The request that was sent answers at 300ms and is remembered.
	time.Sleep(400 * time.Millisecond)
	both := c.CheckAll(budget(50*time.Millisecond), []string{slow.URL + "/a", slow.URL + "/b"})
	var cached int
	for _, r := range both {
		if r.Outcome == gate.Ready && r.Cached {
			cached++
		}
	}
	if cached != 1 {
		t.Errorf("after the slow answers: %+v; want the one request sent earlier answered from the cache", both)
	}
}

// local lets the tests' checks reach their servers on 127.0.0.1.
var local = urlpolicy.Policy{AllowPrivate: true}

// newChecker is gate.New of cfg, which the test needs to succeed.
func newChecker(t testing.TB, cfg gate.Config) *gate.Checker {
	t.Helper()
	c, err := gate.New(cfg)
	if err != nil {
		t.Fatalf("gate.New: %v", err)
	}
	return c
}

// TestPolicy: without an allow list, loopback, private and link-local
// addresses are refused, by name, by literal address, by the address a
// name resolves to, and by redirect; with one, only what it lists is
// checked, redirects included.
func TestPolicy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		}
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	check := func(p urlpolicy.Policy, raw string) gate.Result {
		return newChecker(t, gate.Config{Policy: p, Timeout: 2 * time.Second, CacheTTL: -1}).Check(context.Background(), raw)
	}
	for _, raw := range []string{
		srv.URL + "/log", "http://localhost:" + port + "/log", "http://[::1]:" + port + "/log", "http://10.1.2.3/log",
		"http://192.168.0.1/log", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/log", "http://0.0.0.0:" + port + "/",
		"http://100.64.0.1/", "http://[::ffff:127.0.0.1]:" + port + "/", "http://x.localhost/",
	} {
		if r := check(urlpolicy.Policy{}, raw); r.Outcome != gate.Forbidden || !strings.Contains(r.Detail, "allow_private") {
			t.Errorf("%s with no policy: %s (%s); want forbidden", raw, r.Outcome, r.Detail)
		}
	}
	// A name that is not "localhost" but resolves to this machine (the
	// machine's own name) is refused when the check connects.
	if name, err := os.Hostname(); err == nil {
		if addrs, err := net.LookupHost(name); err == nil && len(addrs) > 0 && net.ParseIP(addrs[0]).IsLoopback() {
			if r := check(urlpolicy.Policy{}, "http://"+name+":"+port+"/log"); r.Outcome != gate.Forbidden || !strings.Contains(r.Detail, "resolves to") {
				t.Errorf("%s, which resolves to %s: %s (%s); want forbidden when it connects", name, addrs[0], r.Outcome, r.Detail)
			}
		} else {
			t.Logf("%s does not resolve to loopback here (%v %v): the connect-time refusal is not exercised", name, addrs, err)
		}
	}
	if r := check(urlpolicy.Policy{AllowPrivate: true}, srv.URL+"/log"); r.Outcome != gate.Ready {
		t.Errorf("allow_private: %s (%s)", r.Outcome, r.Detail)
	}
	if r := check(urlpolicy.Policy{AllowPrivate: true}, srv.URL+"/away"); r.Outcome != gate.Ready && r.Outcome != gate.Failed {
		t.Errorf("allow_private, redirected to the metadata service: %s (%s)", r.Outcome, r.Detail)
	}
	listed := urlpolicy.Policy{Allow: []string{"127.0.0.1:" + port}}
	if r := check(listed, srv.URL+"/log"); r.Outcome != gate.Ready {
		t.Errorf("a listed host and port: %s (%s)", r.Outcome, r.Detail)
	}
	if r := check(listed, srv.URL+"/away"); r.Outcome != gate.Forbidden || !strings.Contains(r.Detail, "redirect") {
		t.Errorf("a listed host redirecting elsewhere: %s (%s); want forbidden", r.Outcome, r.Detail)
	}
	for entry, raw := range map[string]string{
		"archive.mozilla.org":              "http://archive.mozilla.org/pub/x.txt.gz",
		"ARCHIVE.mozilla.org":              "https://archive.mozilla.org:443/pub/x",
		"*.mozilla.org":                    "http://ftp.mozilla.org/pub/x",
		"https://archive.mozilla.org/pub/": "https://archive.mozilla.org/pub/firefox/x",
		"archive.mozilla.org:80":           "http://archive.mozilla.org/x",
		"[2001:db8::1]":                    "http://[2001:db8::1]/x",
	} {
		if err := (urlpolicy.Policy{Allow: []string{entry}}).Permit(raw); err != nil {
			t.Errorf("allow %q, %s: %v", entry, raw, err)
		}
	}
	for entry, raw := range map[string]string{
		"archive.mozilla.org":              "http://archive.mozilla.org.evil.example/x",
		"*.mozilla.org":                    "http://evilmozilla.org/x",
		"https://archive.mozilla.org/pub/": "https://archive.mozilla.org/private/x",
		"archive.mozilla.org:8080":         "http://archive.mozilla.org/x",
	} {
		if err := (urlpolicy.Policy{Allow: []string{entry}}).Permit(raw); err == nil {
			t.Errorf("allow %q lets %s through", entry, raw)
		}
	}
	for _, bad := range []string{"", "host/path", "ftp://host/", "*."} {
		if urlpolicy.CheckAllow(bad) == nil {
			t.Errorf("allow entry %q accepted", bad)
		}
	}
}
