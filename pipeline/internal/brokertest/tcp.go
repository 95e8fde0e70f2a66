package brokertest

import (
	"net"
	"sync"
	"testing"
)

// ServeTCP listens on a loopback port until the test ends, runs handle
// on a goroutine of its own for each connection, and returns the
// address. Every connection is closed when the test ends, so a handler
// that returns at once leaves its connection open and silent: a host
// that accepts and never answers.
func ServeTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
