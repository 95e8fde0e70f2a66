package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

// countingServer is a log host that answers 200 to everything and counts
// the requests it was sent.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestAllowListBypasses: the tricks that got past an allow list matched
// as a raw string prefix (user info naming the allowed host, a redirect
// to such a URL, a longer host name) are refused, reach no server, and
// leave no request at the unlisted one; and an allow-list URL prefix
// without a path is refused when the config is read.
func TestAllowListBypasses(t *testing.T) {
	unlisted, unlistedHits := countingServer(t)
	evil := strings.TrimPrefix(unlisted.URL, "http://")
	allowedMux := http.NewServeMux()
	allowedMux.HandleFunc("/to-evil", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"@"+evil+"/x", http.StatusFound)
	})
	allowedMux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	allowed := httptest.NewServer(allowedMux)
	t.Cleanup(allowed.Close)
	good := strings.TrimPrefix(allowed.URL, "http://")

	for _, entry := range []string{"http://logs.example", "http://" + good, "https://host?x=1", "https://user@host/"} {
		if err := urlpolicy.CheckAllow(entry); err == nil {
			t.Errorf("allow entry %q accepted; want a URL prefix to need a path and nothing else", entry)
		} else {
			t.Logf("%s: %v", entry, err)
		}
	}
	c := newChecker(t, gate.Config{Policy: urlpolicy.Policy{Allow: []string{"http://logs.example/", "http://" + good + "/"}}, CacheTTL: -1, Timeout: 2 * time.Second})
	if r := c.Check(context.Background(), allowed.URL+"/ok"); r.Outcome != gate.Ready {
		t.Fatalf("the allowed host: %s %s", r.Outcome, r.Detail)
	}
	for _, raw := range []string{
		"http://logs.example@" + evil + "/x",
		"http://" + good + "@" + evil + "/x",
		allowed.URL + "/to-evil",
		"http://logs.example.attacker.test/x",
		"http://" + evil + "/x",
	} {
		r := c.Check(context.Background(), raw)
		if r.Outcome != gate.Forbidden || !strings.Contains(r.Detail, "not in wait.check.allow") {
			t.Errorf("%s: %s %q; want forbidden, not in the allow list", raw, r.Outcome, r.Detail)
		}
	}
	if n := unlistedHits.Load(); n != 0 {
		t.Errorf("the unlisted server got %d requests; want none", n)
	}
}

// TestSpecialPurposeAddressesRefused: without an allow list, the IANA
// special-purpose ranges are refused, among them those that carry an
// IPv4 address inside IPv6 (NAT64, 6to4) and the benchmarking range.
func TestSpecialPurposeAddressesRefused(t *testing.T) {
	c := newChecker(t, gate.Config{CacheTTL: -1, Timeout: time.Second})
	for _, raw := range []string{
		"http://[64:ff9b::7f00:1]/x",  // NAT64 of 127.0.0.1
		"http://[64:ff9b:1::a00:1]/x", // local-use NAT64
		"http://[2002:7f00:1::1]/x",   // 6to4 of 127.0.0.1
		"http://198.18.0.1/x",         // benchmarking
		"http://198.19.255.1/x",
		"http://240.0.0.1/x", // reserved
		"http://192.0.0.8/x",
		"http://[fc00::1]/x", // unique local
		"http://[::ffff:169.254.169.254]/x",
		"http://[::]/x",
	} {
		if r := c.Check(context.Background(), raw); r.Outcome != gate.Forbidden || !strings.Contains(r.Detail, "special-purpose") {
			t.Errorf("%s: %s %q; want forbidden", raw, r.Outcome, r.Detail)
		}
	}
}

// TestLongURLRefused: a URL longer than urlpolicy.MaxURLBytes is refused
// without a request, and the refusal does not quote it.
func TestLongURLRefused(t *testing.T) {
	srv, hits := countingServer(t)
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1})
	raw := srv.URL + "/" + strings.Repeat("a", urlpolicy.MaxURLBytes)
	r := c.Check(context.Background(), raw)
	if r.Outcome != gate.Forbidden || !strings.Contains(r.Detail, "bytes long") || len(r.Detail) > 200 {
		t.Errorf("a %d-byte URL: %s %q; want forbidden, briefly", len(raw), r.Outcome, r.Detail)
	}
	if urlpolicy.ValidURL(raw) == nil {
		t.Error("ValidURL takes it")
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests sent", hits.Load())
	}
}
