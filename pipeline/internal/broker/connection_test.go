package broker_test

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/backoff"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
)

// TestNodeOrderIsShuffledPerProcess: each Connection tries every node,
// once per round, in an order of its own, so that replicas spread over a
// cluster's nodes.
func TestNodeOrderIsShuffledPerProcess(t *testing.T) {
	addrs := []broker.Address{{URL: "amqp://a"}, {URL: "amqp://b"}, {URL: "amqp://c"}}
	first := map[string]int{}
	for range 300 {
		order := broker.NewConnection(broker.ConnectionConfig{Addresses: addrs}).Order()
		seen := map[string]bool{}
		for _, a := range order {
			seen[a.URL] = true
		}
		if len(order) != 3 || len(seen) != 3 {
			t.Fatalf("order %v is not a permutation of the nodes", order)
		}
		first[order[0].URL]++
	}
	for _, a := range addrs {
		if first[a.URL] < 50 { // 100 expected of 300; 50 is far out in the tail
			t.Errorf("node %s came first %d times of 300: %v", a.URL, first[a.URL], first)
		}
	}
}

// proxy forwards TCP connections to target until closed, when it also
// cuts every connection it forwards: a broker node that goes away.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	// frozen, while set, holds every byte the proxy reads (a broker that
	// stops answering, its connections open); thawed is closed to let
	// them go.
	frozen atomic.Bool
	thawed chan struct{}
}

// freeze stops forwarding, in both directions, until thaw.
func (p *proxy) freeze() {
	p.mu.Lock()
	p.thawed = make(chan struct{})
	p.mu.Unlock()
	p.frozen.Store(true)
}

// thaw forwards again what was held, and what comes.
func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen.Swap(false) {
		close(p.thawed)
	}
}

// forward copies src to dst, holding what it reads while the proxy is
// frozen.
func (p *proxy) forward(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.frozen.Load() {
				p.mu.Lock()
				thawed := p.thawed
				p.mu.Unlock()
				<-thawed
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.forward(up, c)
			go p.forward(c, up)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) close() {
	p.ln.Close()
	p.thaw()
	p.cut()
}

// cut cuts every connection it forwards now, and goes on accepting new
// ones: a connection lost to the network.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// runConnection runs conn until the test ends.
func runConnection(t *testing.T, conn *broker.Connection) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- conn.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestReconnectsToTheNextNode: of three nodes (two proxies in front of
// the real broker and a port nobody listens on), the connection takes one
// that answers; when that node goes away it moves to the next that
// answers, without dialing the lost node first and without a backoff per
// refused node, and no log line holds the password.
func TestReconnectsToTheNextNode(t *testing.T) {
	brokertest.Require(t)
	// A user whose password is not also its name, so that a leak shows.
	admin, err := url.Parse(brokertest.PulseUser(t, brokertest.UniqueName("nodelist-test")))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := admin.User.Password()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	proxies := map[string]*proxy{}
	var addrs []broker.Address
	for _, host := range []string{deadAddr, "", ""} {
		if host == "" {
			p := newProxy(t, admin.Host)
			host = p.ln.Addr().String()
			proxies[host] = p
		}
		u := *admin
		u.Host = host
		addrs = append(addrs, broker.Address{URL: u.String(), Display: config.RedactURL(u.String())})
	}
	logs := &brokertest.Logs{}
	conn := broker.NewConnection(broker.ConnectionConfig{
		Addresses: addrs,
		// A connection lost soon after it was made waits one backoff
		// (0.5-1s) before reconnecting; a refused node must not add one.
		Backoff: backoff.Policy{Initial: time.Second, Max: time.Second},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	})
	runConnection(t, conn)

	session := func(not string) *broker.Session {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if s := conn.Current(); s != nil && s.Address.URL != not {
				return s
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no connection to a node other than %s within 10s; logs:\n%s", not, logs)
		return nil
	}
	first := session("")
	host := hostOf(t, first.Address.URL)
	if proxies[host] == nil {
		t.Fatalf("connected to %s, which is not a live node", host)
	}
	start := time.Now()
	proxies[host].close()
	second := session(first.Address.URL)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("moving to the next node took %v", took)
	}
	if proxies[hostOf(t, second.Address.URL)] == nil || second.Address.URL == first.Address.URL {
		t.Errorf("reconnected to %s after losing %s", second.Address.Display, first.Address.Display)
	}
	text := logs.String()
	if n := strings.Count(text, "cannot connect to the broker; trying again"); n > 0 {
		t.Errorf("%d rounds waited a backoff although a node answered:\n%s", n, text)
	}
	if strings.Contains(text, "trying the next\" broker="+first.Address.Display) {
		t.Errorf("the lost node %s was dialed again before the others:\n%s", first.Address.Display, text)
	}
	if strings.Contains(text, password) {
		t.Errorf("a log line holds the password:\n%s", text)
	}
	if !strings.Contains(text, "connected to the broker") || !strings.Contains(text, hostOf(t, second.Address.URL)) {
		t.Errorf("the logs do not say which node it is on:\n%s", text)
	}
	t.Logf("order %v; logs:\n%s", displays(conn.Order()), text)
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func displays(addrs []broker.Address) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.Display)
	}
	return out
}

// viaProxy is the AMQP URL raw with its host and port those of p.
func viaProxy(t *testing.T, raw string, p *proxy) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// TestAHungNodeIsNotTriedFirst: of two nodes, the one the connection is on
// hangs (its connections go silent, and new ones are accepted and never
// answered, as a node stopped with SIGSTOP does) and its connection is
// lost. The connection moves to the other node at once, instead of dialing
// the hung one again and waiting out the dial timeout; and a dial to a
// hung node gives up after broker.DialTimeout.
func TestAHungNodeIsNotTriedFirst(t *testing.T) {
	brokertest.Require(t)
	admin, err := url.Parse(brokertest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	proxies := map[string]*proxy{}
	var addrs []broker.Address
	for range 2 {
		p := newProxy(t, admin.Host)
		proxies[p.ln.Addr().String()] = p
		addrs = append(addrs, broker.Address{URL: viaProxy(t, admin.String(), p), Display: p.ln.Addr().String()})
	}
	logs := &brokertest.Logs{}
	conn := broker.NewConnection(broker.ConnectionConfig{
		Addresses: addrs,
		AMQP:      broker.AMQPConfig("hung-node-test", nil),
		Backoff:   backoff.Policy{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond},
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
	})
	runConnection(t, conn)
	var first *broker.Session
	for deadline := time.Now().Add(10 * time.Second); first == nil; time.Sleep(10 * time.Millisecond) {
		if first = conn.Current(); first == nil && time.Now().After(deadline) {
			t.Fatalf("no connection within 10s:\n%s", logs)
		}
	}
	hung := proxies[hostOf(t, first.Address.URL)]
	hung.freeze()
	began := time.Now()
	hung.cut()
	var second *broker.Session
	for deadline := time.Now().Add(2 * broker.DialTimeout); ; time.Sleep(10 * time.Millisecond) {
		if s := conn.Current(); s != nil && s != first {
			second = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not connected again within %s of the node hanging:\n%s", 2*broker.DialTimeout, logs)
		}
	}
	took := time.Since(began)
	t.Logf("connected to the other node %s after the hang", took.Round(time.Millisecond))
	if second.Address.URL == first.Address.URL || took > broker.DialTimeout/2 {
		t.Errorf("after its node hung, the connection took %s to reach %s; want the other node at once", took, second.Address.Display)
	}

	// A dial to the hung node alone gives up after DialTimeout.
	began = time.Now()
	_, err = broker.Dial([]broker.Address{first.Address}, broker.AMQPConfig("hung-node-test", nil))
	if took := time.Since(began); err == nil || took > broker.DialTimeout+time.Second {
		t.Errorf("a dial to the hung node: %v after %s; want an error within %s", err, took, broker.DialTimeout)
	}
}
