// Package gate is the readiness gate's artifact check: does the artifact at
// a URL exist yet? It answers with HTTP HEAD (GET where a server refuses
// HEAD, without reading the body), follows redirects, bounds every request
// by a timeout and all requests by a limit overall and per host, and
// remembers ready answers for a short time.
//
// It speaks HTTP/1.1 on keep-alive connections of its own, with TLS for
// https, and parses answers with net/http's parser. A check is one HEAD
// and one answer; net/http's client would add a hand-off between three
// goroutines to each, which cost more than the request itself.
//
// The gate itself, holding messages back in RabbitMQ wait queues, is in
// package pipeline; this package only asks.
package gate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what a check found.
type Outcome int

// Outcomes of a check.
const (
	// Ready: the artifact answered 2xx.
	Ready Outcome = iota
	// NotYet: the artifact answered 404 or 410; it may appear later.
	NotYet
	// Failed: the check could not tell (timeout, connection refused, any
	// other status). The message waits as for NotYet.
	Failed
	// Forbidden: the policy does not let the check go where the URL, a
	// redirect or the host's address points. The message is refused.
	Forbidden
)

// String names the outcome as logs and metrics do.
func (o Outcome) String() string {
	switch o {
	case Ready:
		return "ready"
	case NotYet:
		return "not_yet"
	case Forbidden:
		return "forbidden"
	default:
		return "failed"
	}
}

// Result is the answer for one URL.
type Result struct {
	URL     string
	Outcome Outcome
	// Detail says what the server answered or what went wrong, for logs and
	// for the reason of a message that passed its deadline.
	Detail string
	// Cached is true when the answer came from the ready cache.
	Cached bool
}

// RedactedURL is the result's URL as logs and reasons show it (see
// RedactURL).
func (r Result) RedactedURL() string { return RedactURL(r.URL) }

// Config tunes a Checker. Zero fields take the defaults.
type Config struct {
	// Timeout bounds one request, redirects and the GET fallback
	// included, also when its caller stopped waiting. Default 10s.
	Timeout time.Duration
	// Concurrency bounds checks in flight overall. Default 64.
	Concurrency int
	// PerHost bounds checks in flight to one host. Default 32.
	PerHost int
	// CacheTTL is how long a ready answer is remembered. Default 1m; a
	// negative value turns the cache off.
	CacheTTL time.Duration
	// CacheSize bounds the ready cache. Default 10000.
	CacheSize int
	// Policy says where checks may go.
	Policy Policy
	// TLS configures https connections; its ServerName and NextProtos
	// are set for each host. Default: the system's roots, TLS 1.2 or
	// later.
	TLS *tls.Config
}

// Defaults of Config.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 64
	DefaultPerHost     = 32
	DefaultCacheTTL    = time.Minute
	DefaultCacheSize   = 10000
)

// Counts are the numbers of checks by outcome, cache hits among the ready.
type Counts struct {
	Ready, NotYet, Failed, Forbidden, Cached atomic.Int64
}

// Checker checks artifact URLs. It is safe for concurrent use.
type Checker struct {
	cfg  Config
	pool *pool
	all  chan struct{}

	mu    sync.Mutex
	hosts map[string]*hostSlots
	ready map[string]time.Time // URL -> expiry

	counts Counts
	// asks runs the requests, on goroutines that outlive one check.
	asks workers
}

// hostSlots bounds the checks in flight to one host.
type hostSlots struct {
	slots chan struct{}
	users int
}

// New returns a Checker with cfg's defaults filled in.
func New(cfg Config) *Checker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PerHost <= 0 {
		cfg.PerHost = DefaultPerHost
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	if len(cfg.Policy.Allow) == 0 && !cfg.Policy.AllowPrivate {
		// The addresses a name resolves to are checked as it connects.
		dialer.Control = dialControl
	}
	tlsConfig := cfg.TLS
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(cfg.Concurrency)}
	}
	return &Checker{
		cfg:   cfg,
		pool:  newPool(dialer, tlsConfig, cfg.PerHost, cfg.Concurrency),
		all:   make(chan struct{}, cfg.Concurrency),
		hosts: map[string]*hostSlots{},
		ready: map[string]time.Time{},
	}
}

// Counts returns the checker's counters.
func (c *Checker) Counts() *Counts { return &c.counts }

// ValidURL reports whether raw is an absolute http or https URL, the only
// kind the gate checks; the error says what is wrong with it.
func ValidURL(raw string) error {
	_, err := parseURL(raw)
	return err
}

// parseURL parses raw and checks it is what ValidURL asks for.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error's text quotes the URL whole, password and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%.200q is not a URL: %v", RedactURL(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%.200q: only http and https artifact URLs can be checked", RedactURL(raw))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%.200q has no host", RedactURL(raw))
	}
	return u, nil
}

// RedactURL is raw as logs and reasons show it: user info, which may be a
// password or a token, replaced by "xxxxx". An artifact URL is upstream
// data, and what its user info holds must not reach a log line, a metric
// or a parked message's reason. A URL with an "@" that does not parse is
// not shown at all. The gate never sends user info to the host.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparseable URL with an @)"
	}
	if u.User == nil {
		return raw
	}
	u.User = url.User(redacted)
	return u.String()
}

// redacted stands for the user info of a URL in logs and reasons.
const redacted = "xxxxx"

// CheckAll checks urls concurrently (within the checker's limits), each
// within ctx (the caller's budget), and returns their results in the
// same order.
func (c *Checker) CheckAll(ctx context.Context, urls []string) []Result {
	results := make([]Result, len(urls))
	if len(urls) == 1 {
		results[0] = c.Check(ctx, urls[0])
		return results
	}
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() { results[i] = c.Check(ctx, u) })
	}
	wg.Wait()
	return results
}

// Check checks one URL.
func (c *Checker) Check(ctx context.Context, raw string) Result {
	r := c.check(ctx, raw)
	switch r.Outcome {
	case Ready:
		c.counts.Ready.Add(1)
		if r.Cached {
			c.counts.Cached.Add(1)
		}
	case NotYet:
		c.counts.NotYet.Add(1)
	case Forbidden:
		c.counts.Forbidden.Add(1)
	default:
		c.counts.Failed.Add(1)
	}
	return r
}

// check asks for one URL. ctx is the caller's budget: waiting for a slot
// ends with it, and so does waiting for the answer; but a request that
// has started goes on, within the checker's timeout and holding its slot,
// so that a ready answer that comes late is remembered for the message's
// next check.
func (c *Checker) check(ctx context.Context, raw string) Result {
	u, err := parseURL(raw)
	if err == nil {
		err = c.cfg.Policy.permit(u, raw)
	}
	if err != nil {
		if errors.Is(err, ErrForbidden) {
			return Result{URL: raw, Outcome: Forbidden, Detail: err.Error()}
		}
		return Result{URL: raw, Outcome: Failed, Detail: err.Error()}
	}
	if c.cachedReady(raw) {
		return Result{URL: raw, Outcome: Ready, Detail: "ready (cached)", Cached: true}
	}
	release, err := c.acquire(ctx, u.Host)
	if err != nil {
		return Result{URL: raw, Outcome: Failed, Detail: "no check slot free within the budget (" + describeContext(err) + ")"}
	}
	a := &asking{c: c, raw: raw, url: u, method: methodHead, deadline: time.Now().Add(c.cfg.Timeout), release: release}
	a.budget = a.deadline
	if budget, ok := ctx.Deadline(); ok {
		a.budget = budget
	}
	if r, done := a.fast(); done {
		a.release()
		return r
	}
	answer := make(chan Result, 1)
	c.asks.run(func() { answer <- a.finish() })
	select {
	case r := <-answer:
		return r
	case <-ctx.Done():
		return Result{URL: raw, Outcome: Failed, Detail: "no answer within the budget (" + describeContext(ctx.Err()) + "); the check goes on, and a ready answer is remembered"}
	}
}

// describeContext names why a context ended.
func describeContext(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "budget spent"
	}
	return err.Error()
}

// methodHead is the method a check starts with.
const methodHead = "HEAD"

// userAgent is the User-Agent header of every check.
const userAgent = "pulsetranslator-gate"

// describe shortens an HTTP client error for a log line or a reason.
func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

// acquire takes a slot overall and one for host; release gives both back.
func (c *Checker) acquire(ctx context.Context, host string) (release func(), err error) {
	c.mu.Lock()
	h := c.hosts[host]
	if h == nil {
		h = &hostSlots{slots: make(chan struct{}, c.cfg.PerHost)}
		c.hosts[host] = h
	}
	h.users++
	c.mu.Unlock()
	done := func() {
		c.mu.Lock()
		if h.users--; h.users == 0 {
			delete(c.hosts, host)
		}
		c.mu.Unlock()
	}
	if err := take(ctx, h.slots); err != nil {
		done()
		return nil, err
	}
	if err := take(ctx, c.all); err != nil {
		<-h.slots
		done()
		return nil, err
	}
	return func() {
		<-c.all
		<-h.slots
		done()
	}, nil
}

// take takes a slot of slots, waiting until ctx ends. A free slot is
// taken even when ctx has ended: a check that goes on after its caller's
// budget (to remember a late answer) may use a free slot, not wait for one.
func take(ctx context.Context, slots chan struct{}) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Checker) cachedReady(raw string) bool {
	if c.cfg.CacheTTL < 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	expiry, ok := c.ready[raw]
	if ok && time.Now().After(expiry) {
		delete(c.ready, raw)
		return false
	}
	return ok
}

func (c *Checker) remember(raw string) {
	if c.cfg.CacheTTL < 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ready) >= c.cfg.CacheSize {
		for u, expiry := range c.ready {
			if now.After(expiry) {
				delete(c.ready, u)
			}
		}
		if len(c.ready) >= c.cfg.CacheSize {
			// Still full of live answers: forget them all rather than grow;
			// a forgotten answer costs one more request.
			clear(c.ready)
		}
	}
	c.ready[raw] = now.Add(c.cfg.CacheTTL)
}
