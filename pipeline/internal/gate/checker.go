// Package gate is the readiness gate's artifact check: does the artifact at
// a URL exist yet? It answers with HTTP HEAD (GET where a server refuses
// HEAD, without reading the body) over net/http, follows redirects within
// the policy, bounds every request by a timeout, all requests by a limit
// overall and per host, keeps a failing host from costing anything but its
// own messages, and remembers ready answers for a short time.
//
// What one URL, one message or one host can cost is bounded: a URL's
// length (urlpolicy.MaxURLBytes), the bytes of the ready cache, the checks in flight
// and waiting for each host, and the time of a check. The holding of
// messages in RabbitMQ wait queues is the runner's; this package only asks.
package gate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
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
	// Forbidden: the URL cannot be checked (not an http or https URL,
	// too long), or the policy does not let the check go where it, a
	// redirect or the host's address points. The message is refused.
	Forbidden
	// Skipped: the check was not sent, because its host is failing (it
	// did not answer its last checks) or has as many checks waiting as
	// in flight. The message waits as for NotYet.
	Skipped
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
	case Skipped:
		return "skipped"
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
func (r Result) RedactedURL() string { return urlpolicy.RedactURL(r.URL) }

// Config tunes a Checker. Zero fields take the defaults.
type Config struct {
	// Timeout bounds one check, redirects and the GET fallback included,
	// also when its caller stopped waiting. Default 10s.
	Timeout time.Duration
	// Concurrency bounds checks in flight overall. Default 64.
	Concurrency int
	// PerHost bounds checks in flight to one host, and the checks that
	// may wait for one of its slots. Default 32.
	PerHost int
	// CacheTTL is how long a ready answer is remembered. Default 1m; a
	// negative value turns the cache off.
	CacheTTL time.Duration
	// CacheBytes bounds the ready cache: the remembered URLs' lengths,
	// plus 128 bytes each. Default 4 MiB.
	CacheBytes int
	// HostCooldown is how long a host that stopped answering is not asked
	// after it trips, doubling each time it trips again, up to eight
	// times. Default 10s.
	HostCooldown time.Duration
	// HostSlowAfter is how long a host may have checks in flight without
	// answering any before the checks that may wait for its slots are
	// bounded by PerHost. Default 500ms.
	HostSlowAfter time.Duration
	// Policy says where checks may go.
	Policy urlpolicy.Policy
	// ProxyFromEnvironment sends checks through the proxy that
	// HTTP_PROXY, HTTPS_PROXY and NO_PROXY name. The policy still applies
	// to every URL; the addresses its names resolve to are then the
	// proxy's to check.
	ProxyFromEnvironment bool
	// TLS configures https connections. Default: the system's roots,
	// TLS 1.2 or later.
	TLS *tls.Config
}

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultConcurrency   = 64
	DefaultPerHost       = 32
	DefaultCacheTTL      = time.Minute
	DefaultCacheBytes    = 4 << 20
	DefaultHostCooldown  = 10 * time.Second
	DefaultHostSlowAfter = 500 * time.Millisecond
)

// Counts are the numbers of checks by outcome, cache hits among the ready.
type Counts struct {
	Ready, NotYet, Failed, Forbidden, Skipped, Cached atomic.Int64
}

// Checker checks artifact URLs. It is safe for concurrent use.
type Checker struct {
	cfg    Config
	policy *urlpolicy.Rules
	// transport sends the checks; the checks follow redirects themselves.
	transport *http.Transport
	all       chan struct{}
	hosts     *hosts
	cache     *readyCache
	counts    Counts
	// proxies are the addresses of the proxies checks went through, which
	// the policy does not apply to.
	proxies sync.Map
}

// New returns a Checker with cfg's defaults filled in, or the errors of
// its policy's allow list.
func New(cfg Config) (*Checker, error) {
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
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.HostCooldown <= 0 {
		cfg.HostCooldown = DefaultHostCooldown
	}
	if cfg.HostSlowAfter <= 0 {
		cfg.HostSlowAfter = DefaultHostSlowAfter
	}
	policy, err := cfg.Policy.Compile()
	if err != nil {
		return nil, err
	}
	c := &Checker{
		cfg:    cfg,
		policy: policy,
		all:    make(chan struct{}, cfg.Concurrency),
		hosts:  newHosts(cfg.PerHost, cfg.HostSlowAfter, cfg.HostCooldown),
		cache:  newReadyCache(cfg.CacheTTL, cfg.CacheBytes),
	}
	c.transport = c.newTransport()
	return c, nil
}

// Counts returns the checker's counters.
func (c *Checker) Counts() *Counts { return &c.counts }

// FailingHosts returns how many hosts are not asked now, because they
// stopped answering.
func (c *Checker) FailingHosts() int { return c.hosts.failing(time.Now()) }

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
	r.URL = raw
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
	case Skipped:
		c.counts.Skipped.Add(1)
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
	u, t, err := urlpolicy.Parse(raw)
	if err == nil {
		err = c.policy.Permit(t, raw)
	}
	if err != nil {
		return Result{Outcome: Forbidden, Detail: err.Error()}
	}
	key := u.String()
	now := time.Now()
	if c.cache.ready(key, now) {
		return Result{Outcome: Ready, Detail: "ready (cached)", Cached: true}
	}
	a := &asking{c: c, key: key, budget: now.Add(c.cfg.Timeout)}
	if budget, ok := ctx.Deadline(); ok && budget.Before(a.budget) {
		a.budget = budget
	}
	if r, ok := a.take(ctx, t.HostPort(), now); !ok {
		return r
	}
	a.deadline = time.Now().Add(c.cfg.Timeout)
	answer := make(chan Result, 1)
	go func() { answer <- a.ask(u) }()
	select {
	case r := <-answer:
		return r
	case <-ctx.Done():
		detail := "no answer within the budget (" + describeContext(ctx.Err()) + ")"
		a.slot.Load().miss(detail)
		return Result{Outcome: Failed, Detail: detail + "; the check goes on, and a ready answer is remembered"}
	}
}

// take takes a slot of host and one overall, within ctx; when it cannot,
// ok is false and r says why.
func (a *asking) take(ctx context.Context, host string, now time.Time) (r Result, ok bool) {
	slot, err := a.c.hosts.acquire(ctx, host, now)
	if err != nil {
		var s *skipped
		if errors.As(err, &s) {
			return Result{Outcome: Skipped, Detail: s.detail}, false
		}
		return Result{Outcome: Failed, Detail: err.Error()}, false
	}
	if err := take(ctx, a.c.all); err != nil {
		slot.release(neutral, "")
		return Result{Outcome: Failed, Detail: "no check slot free within the budget (" + describeContext(err) + ")"}, false
	}
	a.host = host
	a.slot.Store(slot)
	return Result{}, true
}

// describeContext names why a context ended.
func describeContext(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "budget spent"
	}
	return err.Error()
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

// asking is one check under way.
type asking struct {
	c *Checker
	// key is the normalised URL, as the ready cache knows it.
	key string
	// host is the host whose slot the check holds, slot: the URL's, or
	// where a redirect led. The check also holds an overall slot.
	host string
	slot atomic.Pointer[hostSlot]
	// deadline ends the check: the checker's timeout after it got its
	// slots. budget is when the caller stops waiting (at most the
	// timeout after it began); a redirect to another host waits for that
	// host's slot until then, and no longer.
	deadline, budget time.Time
}

// ask sends the check of u (HEAD, or GET for a host that refuses HEAD),
// follows its redirects, and gives back its slots with what it tells of
// the host it last asked.
func (a *asking) ask(u *url.URL) Result {
	ctx, cancel := context.WithDeadline(context.Background(), a.deadline)
	defer cancel()
	method := http.MethodHead
	var ans answer
	for hops := 0; ; hops++ {
		ans = a.send(ctx, method, u)
		if ans.refusesHead {
			method = http.MethodGet
			ans = a.send(ctx, method, u)
		}
		if !ans.redirect {
			break
		}
		next, end := a.redirect(u, ans.location, hops)
		if end != nil {
			ans = *end
			break
		}
		u = next
	}
	a.release(ans.health, ans.Detail)
	if ans.Outcome == Ready {
		a.c.cache.remember(a.key, time.Now())
	}
	return ans.Result
}

// release gives back the check's slots, the host's with what the check
// tells of it, if it still holds them.
func (a *asking) release(r report, detail string) {
	if slot := a.slot.Swap(nil); slot != nil {
		<-a.c.all
		slot.release(r, detail)
	}
}

// answer is what one request of a check found.
type answer struct {
	Result
	// health is what it tells of the host, for its breaker.
	health report
	// refusesHead is set when the host answered that it does not take
	// HEAD: the check asks again with GET.
	refusesHead bool
	// redirect is set when the host answered with a redirect, to
	// location.
	redirect bool
	location string
}

// send sends one request of the check and says what the answer means.
func (a *asking) send(ctx context.Context, method string, u *url.URL) answer {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return answer{Result: Result{Outcome: Failed, Detail: err.Error()}}
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := a.c.transport.RoundTrip(req)
	if err != nil {
		return a.failed(err)
	}
	_ = resp.Body.Close() // unread: a GET's body is never read
	status := resp.StatusCode
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	switch {
	case status >= 200 && status < 300:
		return answer{Result: Result{Outcome: Ready, Detail: http.StatusText(status)}, health: answered}
	case status == http.StatusNotFound || status == http.StatusGone:
		return answer{Result: Result{Outcome: NotYet, Detail: text}, health: answered}
	case isRedirect(status):
		return answer{Result: Result{Outcome: Failed, Detail: text}, health: answered, redirect: true, location: resp.Header.Get("Location")}
	case (status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented) && method == http.MethodHead:
		return answer{Result: Result{Outcome: Failed, Detail: text}, health: answered, refusesHead: true}
	}
	return answer{Result: Result{Outcome: Failed, Detail: text}, health: answered}
}

// userAgent is the User-Agent header of every check.
const userAgent = "pulsetranslator-gate"
