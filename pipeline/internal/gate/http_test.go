package gate_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
)

// rawServer serves each connection with serve, which reads the requests
// from r and writes the answers itself.
func rawServer(t testing.TB, serve func(conn net.Conn, r *bufio.Reader)) string {
	t.Helper()
	return "http://" + brokertest.ServeTCP(t, func(conn net.Conn) {
		defer conn.Close()
		serve(conn, bufio.NewReader(conn))
	})
}

// readHead reads one request head and returns its lines.
func readHead(r *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return lines, nil
		}
		lines = append(lines, line)
	}
}

// TestKeepAlive: checks of one host, one after another, share one
// connection.
func TestKeepAlive(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1})
	for i := range 50 {
		if r := c.Check(context.Background(), srv.URL+"/log/"+string(rune('a'+i%26))); r.Outcome != gate.Ready {
			t.Fatalf("check %d: %s %s", i, r.Outcome, r.Detail)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 checks one after another opened %d connections, want 1", n)
	}
}

// TestHostClosesIdleConnection: a host that closes each connection after
// one answer, without saying so, costs no check: the request goes again
// on a new connection.
func TestHostClosesIdleConnection(t *testing.T) {
	var requests atomic.Int64
	base := rawServer(t, func(conn net.Conn, r *bufio.Reader) {
		if _, err := readHead(r); err != nil {
			return
		}
		requests.Add(1)
		conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		time.Sleep(20 * time.Millisecond) // the answer is read and the connection kept before it closes
	})
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1})
	for i := range 5 {
		if r := c.Check(context.Background(), base+"/log"); r.Outcome != gate.Ready {
			t.Fatalf("check %d: %s %s; want ready, sent again on a new connection", i, r.Outcome, r.Detail)
		}
		time.Sleep(40 * time.Millisecond)
	}
	if n := requests.Load(); n != 5 {
		t.Errorf("%d requests answered, want 5", n)
	}
}

// TestAnswerHead: informational answers are skipped; a head that never
// ends fails the check at the cap instead of taking memory; a header the
// host repeats is harmless.
func TestAnswerHead(t *testing.T) {
	base := rawServer(t, func(conn net.Conn, r *bufio.Reader) {
		for {
			lines, err := readHead(r)
			if err != nil || len(lines) == 0 {
				return
			}
			switch {
			case strings.HasPrefix(lines[0], "HEAD /hints "):
				conn.Write([]byte("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			case strings.HasPrefix(lines[0], "HEAD /endless "):
				conn.Write([]byte("HTTP/1.1 200 OK\r\n"))
				line := []byte("X-Filler: " + strings.Repeat("x", 1000) + "\r\n")
				for range 100_000 { // 100 MB, if nothing stopped it
					if _, err := conn.Write(line); err != nil {
						return
					}
				}
				return
			default:
				conn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
			}
		}
	})
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, Timeout: 5 * time.Second})
	if r := c.Check(context.Background(), base+"/hints"); r.Outcome != gate.Ready {
		t.Errorf("103 then 200: %s %s, want ready", r.Outcome, r.Detail)
	}
	began := time.Now()
	if r := c.Check(context.Background(), base+"/endless"); r.Outcome != gate.Failed || !strings.Contains(r.Detail, "exceeded 65536 bytes") {
		t.Errorf("an endless head: %s %q, want failed at 64 KiB", r.Outcome, r.Detail)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("the endless head took %s to refuse", took)
	}
	if r := c.Check(context.Background(), base+"/other"); r.Outcome != gate.NotYet {
		t.Errorf("after the endless head, another check of the host: %s %s", r.Outcome, r.Detail)
	}
}

// TestRequestCannotBeSteered: what an upstream URL holds stays in the
// request line, escaped; it cannot add a header or a second request.
func TestRequestCannotBeSteered(t *testing.T) {
	heads := make(chan []string, 10)
	base := rawServer(t, func(conn net.Conn, r *bufio.Reader) {
		for {
			lines, err := readHead(r)
			if err != nil {
				return
			}
			heads <- lines
			conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}
	})
	c := newChecker(t, gate.Config{Policy: local, CacheTTL: -1})
	for _, raw := range []string{
		base + "/a%0d%0aX-Injected:%20yes",
		base + "/a%0D%0A%0D%0AHEAD%20/second%20HTTP/1.1",
		base + "/a\r\nX-Injected: yes",
	} {
		r := c.Check(context.Background(), raw)
		if strings.ContainsAny(raw, "\r\n") {
			if r.Outcome != gate.Forbidden {
				t.Errorf("%q: %s, want refused without a request", raw, r.Outcome)
			}
			continue
		}
		if r.Outcome != gate.Ready {
			t.Fatalf("%q: %s %s", raw, r.Outcome, r.Detail)
		}
		lines := <-heads
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "HEAD /a%0") || !strings.HasSuffix(lines[0], " HTTP/1.1") {
			t.Errorf("%q was sent as %q; want a request line, Host and User-Agent", raw, lines)
		}
	}
	select {
	case lines := <-heads:
		t.Errorf("a request more than asked for: %q", lines)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestHTTPS: https hosts are checked over TLS, trusting the configured
// roots, and a certificate the roots do not vouch for fails the check.
func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead || r.ProtoMajor != 1 {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	trusting := newChecker(t, gate.Config{Policy: local, CacheTTL: -1, TLS: &tls.Config{RootCAs: roots}})
	if r := trusting.Check(context.Background(), srv.URL+"/log"); r.Outcome != gate.Ready {
		t.Errorf("https with the server's root: %s %s", r.Outcome, r.Detail)
	}
	if r := newChecker(t, gate.Config{Policy: local, CacheTTL: -1}).Check(context.Background(), srv.URL+"/log"); r.Outcome != gate.Failed || !strings.Contains(r.Detail, "certificate") {
		t.Errorf("https with the system's roots only: %s %q, want failed on the certificate", r.Outcome, r.Detail)
	}
}

// TestLateAnswerOnKeptConnection: a request sent on a kept connection,
// from the caller's goroutine, outlives the caller's budget like any
// other, and its late ready answer is remembered.
func TestLateAnswerOnKeptConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
	}))
	defer srv.Close()
	c := newChecker(t, gate.Config{Policy: local, PerHost: 1})
	if r := c.Check(context.Background(), srv.URL+"/warm"); r.Outcome != gate.Ready {
		t.Fatalf("warm-up: %s %s", r.Outcome, r.Detail)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if r := c.Check(ctx, srv.URL+"/slow"); r.Outcome != gate.Failed || !strings.Contains(r.Detail, "no answer within the budget") {
		t.Fatalf("a slow answer within 30ms: %s %q", r.Outcome, r.Detail)
	}
	time.Sleep(300 * time.Millisecond)
	if r := c.Check(context.Background(), srv.URL+"/slow"); !r.Cached {
		t.Errorf("after the late answer: %s cached %v; want it remembered", r.Outcome, r.Cached)
	}
}
