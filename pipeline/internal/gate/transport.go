package gate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
	"golang.org/x/net/http/httpproxy"
)

// maxRedirects bounds the redirects one check follows.
const maxRedirects = 10

// maxAnswerHead bounds what one answer's head may take: a host that
// sends endless header lines gets a failed check, not the memory.
const maxAnswerHead = 64 << 10

// idleTimeout is how long an unused keep-alive connection is kept.
const idleTimeout = 30 * time.Second

// newTransport is the checker's HTTP transport: net/http's, over a dialer that
// applies the policy to every address it dials (and, without an allow
// list, to the addresses names resolve to), with HTTP/2 where a host
// offers it, keep-alive connections (at most per_host to a host,
// concurrency in all) and bounded answer heads. The checks use the
// transport, not an http.Client: they follow redirects themselves, so
// that each hop meets the policy and takes a slot of the host it goes
// to, and a Location that is not a URL is never quoted (http.Client
// quotes it whole, user info and all, in its error).
func (c *Checker) newTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: c.cfg.Timeout, KeepAlive: 30 * time.Second}
	if c.policy.GuardsAddresses() {
		dialer.Control = c.policy.Control
	}
	proxyDialer := &net.Dialer{Timeout: c.cfg.Timeout, KeepAlive: 30 * time.Second}
	tlsConfig := c.cfg.TLS
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			if _, ok := c.proxies.Load(address); ok {
				return proxyDialer.DialContext(ctx, network, address)
			}
			if err := c.policy.PermitDial(address); err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, network, address)
		},
		TLSClientConfig:        tlsConfig.Clone(),
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           c.cfg.Concurrency,
		MaxIdleConnsPerHost:    c.cfg.PerHost,
		MaxConnsPerHost:        c.cfg.PerHost,
		IdleConnTimeout:        idleTimeout,
		TLSHandshakeTimeout:    c.cfg.Timeout,
		ResponseHeaderTimeout:  c.cfg.Timeout,
		MaxResponseHeaderBytes: maxAnswerHead,
		DisableCompression:     true,
	}
	if c.cfg.ProxyFromEnvironment {
		fromEnv := httpproxy.FromEnvironment().ProxyFunc()
		transport.Proxy = func(req *http.Request) (*url.URL, error) { return c.proxy(fromEnv, req) }
	}
	return transport
}

// proxy is the proxy that fromEnv names for req; its address is noted,
// so that the dialer lets connections to it through.
func (c *Checker) proxy(fromEnv func(*url.URL) (*url.URL, error), req *http.Request) (*url.URL, error) {
	u, err := fromEnv(req.URL)
	if u != nil {
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443", "socks5": "1080"}[u.Scheme]
			if port == "" {
				port = "80"
			}
		}
		c.proxies.Store(net.JoinHostPort(u.Hostname(), port), struct{}{})
	}
	return u, err
}

// isRedirect reports the statuses a check follows.
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirect points the check from u to location, within the redirect
// limit, the schemes it follows and the policy, and moves its slot to
// the host it leads to. The answer is set when the check ends here.
func (a *asking) redirect(u *url.URL, location string, hops int) (*url.URL, *answer) {
	fail := func(outcome Outcome, format string, args ...any) (*url.URL, *answer) {
		return nil, &answer{Result: Result{Outcome: outcome, Detail: "redirect: " + fmt.Sprintf(format, args...)}}
	}
	if location == "" {
		return fail(Failed, "no Location in the answer")
	}
	if hops >= maxRedirects {
		return fail(Failed, "more than %d redirects", maxRedirects)
	}
	next, err := u.Parse(location)
	if err != nil {
		return fail(Failed, "%.200q is not a URL", urlpolicy.RedactURL(location))
	}
	shown := urlpolicy.RedactURL(next.String())
	if len(shown) > urlpolicy.MaxURLBytes {
		return fail(Failed, "to a URL of %d bytes; the gate follows URLs of at most %d", len(shown), urlpolicy.MaxURLBytes)
	}
	t, err := urlpolicy.TargetOf(next)
	if err != nil {
		return fail(Failed, "%.200q %v", shown, err)
	}
	if err := a.c.policy.Permit(t, shown); err != nil {
		return fail(Forbidden, "%v", err)
	}
	if r, ok := a.moveTo(t.HostPort()); !ok {
		r.Detail = "redirect: " + r.Detail
		return nil, &answer{Result: r}
	}
	return next, nil
}

// moveTo makes the check hold a slot of host, where a redirect leads,
// instead of the one it holds: per_host bounds the requests a host is
// sent, whichever host's URL led to it. It gives its slots back before it
// waits, so a check that waits for a busy (or hanging) host holds none
// that other checks need, and it waits no longer than the caller's
// budget; a free slot is taken even after it.
func (a *asking) moveTo(host string) (Result, bool) {
	if host == a.host {
		return Result{}, true
	}
	a.release(answered, "")
	ctx, cancel := context.WithDeadline(context.Background(), a.budget)
	defer cancel()
	return a.take(ctx, host, time.Now())
}

// failed is what a request that met err found.
func (a *asking) failed(err error) answer {
	if errors.Is(err, urlpolicy.ErrForbidden) {
		return answer{Result: Result{Outcome: Forbidden, Detail: describe(err, a.c.cfg.Timeout)}, health: neutral}
	}
	return answer{Result: Result{Outcome: Failed, Detail: describe(err, a.c.cfg.Timeout)}, health: unanswered}
}

// describe shortens an HTTP client error for a log line or a reason. It
// never shows the request's URL: url.Error's text quotes it.
func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}
