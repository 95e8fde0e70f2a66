package gate

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// closeCounting is a connection that counts its closes.
type closeCounting struct {
	net.Conn
	closes *atomic.Int32
}

func (c closeCounting) Close() error {
	c.closes.Add(1)
	return c.Conn.Close()
}

// TestPoolKeepsWhatItMay: at most perHost connections are kept for one
// host and maxIdle in all, the rest closed; one unused for idleTimeout is
// closed instead of handed out.
func TestPoolKeepsWhatItMay(t *testing.T) {
	var closes atomic.Int32
	mk := func(key string) *conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &conn{Conn: closeCounting{a, &closes}, key: key}
	}
	p := newPool(&net.Dialer{}, &tls.Config{}, 2, 3)
	now := time.Now()
	for range 3 {
		p.put(mk("http://a:80"), now)
	}
	if n, c := len(p.idle["http://a:80"]), closes.Load(); n != 2 || c != 1 {
		t.Errorf("3 connections to one host put back: %d kept, %d closed; want 2 kept (per host) and 1 closed", n, c)
	}
	p.put(mk("http://b:80"), now)
	p.put(mk("http://b:80"), now)
	if p.count != 3 || closes.Load() != 2 {
		t.Errorf("2 more to another host: %d kept in all, %d closed; want 3 (in all) and 2", p.count, closes.Load())
	}
	if c := p.get("http://a:80", now.Add(idleTimeout)); c != nil || closes.Load() != 4 {
		t.Errorf("after %s unused: got a connection %v, %d closed; want none, and both of the host closed", idleTimeout, c != nil, closes.Load())
	}
	if c := p.get("http://b:80", now.Add(idleTimeout-time.Second)); c == nil || !c.used {
		t.Errorf("within %s: got %v; want a kept connection marked used", idleTimeout, c)
	}
	if c := p.get("http://c:80", now); c != nil {
		t.Errorf("a host never connected to: got a connection")
	}
}
