package runner

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"time"
)

// Bounds of the operator's HTTP server (run --http): what any number of
// clients, idle or slow, may cost the process.
const (
	// MaxHTTPConns bounds its open connections, and so its file
	// descriptors: the broker connection and the gate's checks keep
	// theirs however many clients connect.
	MaxHTTPConns = 128
	// httpReadHeaderTimeout bounds the wait for a request's head,
	// httpWriteTimeout the writing of an answer to a client that does not
	// read, httpIdleTimeout a kept connection without a request.
	httpReadHeaderTimeout = 5 * time.Second
	httpWriteTimeout      = 20 * time.Second
	httpIdleTimeout       = 30 * time.Second
	httpMaxHeaderBytes    = 16 << 10
)

// ServeHTTP serves h on ln, in the background, within the bounds above:
// a request's head must come within 5s, an answer be read within 20s, a
// kept connection be used within 30s, and no more than MaxHTTPConns
// connections are open at once. Past that, a new connection closes the
// one that has waited longest without a request under way, so that
// clients that connect and send nothing cannot keep a probe of /healthz
// out; when every connection has a request under way, the new one is
// closed.
func ServeHTTP(ln net.Listener, h http.Handler) *HTTPServer {
	bounded := newBoundedListener(ln, MaxHTTPConns)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ConnState:         bounded.track,
	}
	go func() { _ = srv.Serve(bounded) }()
	return &HTTPServer{srv: srv, ln: bounded}
}

// HTTPServer is a server ServeHTTP started.
type HTTPServer struct {
	srv *http.Server
	ln  *boundedListener
}

// Close stops the server and closes its connections.
func (s *HTTPServer) Close() error { return s.srv.Close() }

// boundedListener accepts at most max open connections, closing the
// longest-waiting one without a request under way to make room for a
// new one. The server tells it each connection's state (track).
type boundedListener struct {
	net.Listener
	max int

	mu sync.Mutex
	// conns are the open connections, each with its place in waiting
	// while it has no request under way (new or idle), nil while it has.
	conns map[net.Conn]*list.Element
	// waiting lists the connections without a request under way,
	// longest-waiting first.
	waiting list.List
}

func newBoundedListener(ln net.Listener, max int) *boundedListener {
	return &boundedListener{Listener: ln, max: max, conns: map[net.Conn]*list.Element{}}
}

// Accept returns the next connection, within the bound.
func (l *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var evict net.Conn
		if len(l.conns) >= l.max {
			front := l.waiting.Front()
			if front == nil {
				l.mu.Unlock()
				_ = c.Close() // every connection has a request under way
				continue
			}
			evict = front.Value.(net.Conn)
			l.forget(evict)
		}
		l.conns[c] = l.waiting.PushBack(c)
		l.mu.Unlock()
		if evict != nil {
			_ = evict.Close()
		}
		return c, nil
	}
}

// track follows a connection's state, as http.Server.ConnState.
func (l *boundedListener) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, open := l.conns[c]
	if !open {
		return // evicted
	}
	switch state {
	case http.StateActive:
		if el != nil {
			l.waiting.Remove(el)
			l.conns[c] = nil
		}
	case http.StateIdle:
		if el == nil {
			l.conns[c] = l.waiting.PushBack(c)
		}
	case http.StateClosed, http.StateHijacked:
		l.forget(c)
	}
}

// forget stops counting c; l.mu is held.
func (l *boundedListener) forget(c net.Conn) {
	if el := l.conns[c]; el != nil {
		l.waiting.Remove(el)
	}
	delete(l.conns, c)
}

// openConns returns how many connections are open.
func (l *boundedListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
