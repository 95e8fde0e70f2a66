package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

// TestNoUserInfoLeaves checks artifact URLs with user info (a password, or
// a token as the user): the check sends no credentials to the host, and no
// result, reason or policy error shows them, whether the URL is checked,
// refused by the policy, malformed, or redirected to a URL with user info.
func TestNoUserInfoLeaves(t *testing.T) {
	const secret = "s3cret"
	var sawAuth atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.URL.User != nil {
			sawAuth.Add(1)
		}
		http.NotFound(w, r)
	})
	mux.HandleFunc("/to-bad", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://user:"+secret+"@host:bad%zz/x")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/to-ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://user:"+secret+"@example.invalid/x", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	withUser := strings.Replace(srv.URL, "http://", "http://user:"+secret+"@", 1)

	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1})
	var shown []string
	for _, path := range []string{"/missing", "/to-bad", "/to-ftp"} {
		r := c.Check(context.Background(), withUser+path)
		if r.URL != withUser+path {
			t.Errorf("%s: Result.URL %q; want the URL as given, to match the outputs' URLs", path, r.URL)
		}
		if r.Outcome == gate.Ready {
			t.Errorf("%s: ready, want not ready", path)
		}
		shown = append(shown, r.RedactedURL(), r.Detail)
	}
	if n := sawAuth.Load(); n != 0 {
		t.Errorf("the host was sent credentials %d times", n)
	}
	for _, raw := range []string{"http://user:" + secret + "@localhost/x", "ftp://user:" + secret + "@host/x", "http://user:" + secret + "@host:bad%zz/x"} {
		err := urlpolicy.Policy{}.Permit(raw)
		if err == nil {
			t.Fatalf("Permit(%q) is nil, want a refusal", raw)
		}
		shown = append(shown, err.Error())
	}
	if err := (urlpolicy.Policy{Allow: []string{"archive.mozilla.org"}}).Permit("https://user:" + secret + "@other.example/x"); err != nil {
		shown = append(shown, err.Error())
	} else {
		t.Error("a host outside wait.check.allow was permitted")
	}
	for _, s := range shown {
		if strings.Contains(s, secret) || strings.Contains(s, "user:") {
			t.Errorf("shows the user info: %s", s)
		}
	}
	t.Logf("shown: %q", shown)
}
