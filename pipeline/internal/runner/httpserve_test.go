package runner

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIdleClientsCannotCrowdOutProbes: clients that connect and send
// nothing, three times as many as the server may hold, never hold more
// than MaxHTTPConns connections, and a probe of /healthz that comes after
// them is answered at once.
func TestIdleClientsCannotCrowdOutProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := ServeHTTP(ln, mux)
	t.Cleanup(func() { srv.Close() })
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 3 * MaxHTTPConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	began := time.Now()
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("/healthz behind %d idle connections: %v", len(idle), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" || time.Since(began) > time.Second {
		t.Errorf("/healthz behind %d idle connections: %d %q in %s", len(idle), resp.StatusCode, body, time.Since(began))
	}
	if n := srv.ln.openConns(); n > MaxHTTPConns {
		t.Errorf("%d connections open; the bound is %d", n, MaxHTTPConns)
	}
	// The idle ones closed to make room are closed by the server.
	closed := 0
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed < len(idle)-MaxHTTPConns {
		t.Errorf("%d of %d idle connections were closed; want at least %d", closed, len(idle), len(idle)-MaxHTTPConns)
	}
}
