package gate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"
)

// maxRedirects bounds the redirects one check follows.
const maxRedirects = 10

// asking is one check under way: the request it sends next, or the
// connection whose answer it awaits. The caller starts it (fast), and a
// worker goroutine finishes it when the caller cannot (finish).
type asking struct {
	c   *Checker
	raw string
	// url and method are the request: the URL checked or where a
	// redirect led, HEAD or, for a host that refuses HEAD, GET.
	url    *url.URL
	method string
	hops   int
	// sent is a connection that carries the request, its answer not
	// read yet; nil when the request is still to be sent.
	sent *conn
	// deadline ends the check: the checker's timeout after it began.
	deadline time.Time
	// budget is when the caller stops waiting; a redirect to another
	// host waits for that host's slot until then, and no longer.
	budget time.Time
	// release gives back the slots the check holds: one overall and one
	// for the host it asks now.
	release func()
}

// fast tries the check on the caller's goroutine, over an idle
// keep-alive connection: the common case, a HEAD answered at once, then
// costs no hand-off between goroutines. It gives up at a.budget. done is
// false when a worker must go on: no connection was idle, the host had
// closed it, the answer was a redirect or a refusal of HEAD, or none came
// within the budget (the request stays sent, and the worker awaits its
// answer until the deadline). It ends at the budget, not when the
// caller's context is cancelled: the budget is a few seconds.
func (a *asking) fast() (r Result, done bool) {
	c := a.c.pool.get(hostKey(a.url), time.Now())
	if c == nil {
		return Result{}, false
	}
	budget := a.waitsUntil()
	if err := a.sendOn(c, budget); err != nil {
		return Result{}, false
	}
	if err := c.await(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && budget.Before(a.deadline) {
			a.sent = c
			return Result{}, false
		}
		_ = c.Close()
		if closedWhileIdle(c, err) {
			return Result{}, false
		}
		return a.failed(err), true
	}
	resp, err := c.receive(a.method)
	if err != nil {
		_ = c.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) && budget.Before(a.deadline) {
			return Result{URL: a.raw, Outcome: Failed, Detail: "the answer began but did not end within the budget"}, true
		}
		return a.failed(err), true
	}
	return a.answered(c, resp)
}

// finish completes the check on a worker goroutine, within the
// deadline, and gives back its slots.
func (a *asking) finish() Result {
	defer func() { a.release() }() // a redirect may have moved the slots
	for {
		c := a.sent
		a.sent = nil
		if c != nil {
			// Sent from the fast path, within the budget: its answer may
			// take until the deadline.
			_ = c.SetDeadline(a.deadline)
		} else {
			var err error
			if c, err = a.connect(); err != nil {
				return a.failed(err)
			}
		}
		if err := c.await(); err != nil {
			_ = c.Close()
			if closedWhileIdle(c, err) {
				continue
			}
			return a.failed(err)
		}
		resp, err := c.receive(a.method)
		if err != nil {
			_ = c.Close()
			return a.failed(err)
		}
		if r, done := a.answered(c, resp); done {
			return r
		}
	}
}

// connect sends the request on an idle connection, or on a new one,
// within the deadline.
func (a *asking) connect() (*conn, error) {
	key := hostKey(a.url)
	if c := a.c.pool.get(key, time.Now()); c != nil && a.sendOn(c, a.deadline) == nil {
		return c, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), a.deadline)
	defer cancel()
	c, err := a.c.pool.dial(ctx, a.url, key)
	if err != nil {
		return nil, err
	}
	if err := a.sendOn(c, a.deadline); err != nil {
		return nil, err
	}
	return c, nil
}

// sendOn sends the request on c, whose reads and writes end at
// deadline; on failure it closes c.
func (a *asking) sendOn(c *conn, deadline time.Time) error {
	_ = c.SetDeadline(deadline)
	err := c.send(a.method, a.url)
	if err != nil {
		_ = c.Close()
	}
	return err
}

// answered reads resp, the answer on c, keeps c for the next request
// when it can carry one, and says what the check found; done is false
// when the check goes on, to where a redirect leads or with GET.
func (a *asking) answered(c *conn, resp *http.Response) (r Result, done bool) {
	if reusable(a.method, resp) {
		a.c.pool.put(c, time.Now())
	} else {
		_ = c.Close()
	}
	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		a.c.remember(a.raw)
		return Result{URL: a.raw, Outcome: Ready, Detail: http.StatusText(status)}, true
	case status == http.StatusNotFound || status == http.StatusGone:
		return Result{URL: a.raw, Outcome: NotYet, Detail: fmt.Sprintf("%d %s", status, http.StatusText(status))}, true
	case (status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented) && a.method == http.MethodHead:
		a.method = http.MethodGet
		return Result{}, false
	case isRedirect(status):
		return a.redirect(resp.Header.Get("Location"))
	}
	return Result{URL: a.raw, Outcome: Failed, Detail: fmt.Sprintf("%d %s", status, http.StatusText(status))}, true
}

// isRedirect reports the statuses a check follows.
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirect points the check to location, within the redirect limit, the
// schemes it follows and the policy.
func (a *asking) redirect(location string) (r Result, done bool) {
	fail := func(outcome Outcome, format string, args ...any) (Result, bool) {
		return Result{URL: a.raw, Outcome: outcome, Detail: "redirect: " + fmt.Sprintf(format, args...)}, true
	}
	if location == "" {
		return fail(Failed, "no Location in the answer")
	}
	next, err := a.url.Parse(location)
	if err != nil {
		return fail(Failed, "%.200q is not a URL", RedactURL(location))
	}
	if a.hops >= maxRedirects {
		return fail(Failed, "more than %d redirects", maxRedirects)
	}
	if next.Scheme != "http" && next.Scheme != "https" {
		return fail(Failed, "to a %s URL; only http and https are followed", next.Scheme)
	}
	if err := a.c.cfg.Policy.permit(next, next.String()); err != nil {
		if errors.Is(err, ErrForbidden) {
			return fail(Forbidden, "%v", err)
		}
		return fail(Failed, "%v", err)
	}
	if err := a.moveSlots(next); err != nil {
		return fail(Failed, "no check slot free for %s within the budget (%s)", next.Host, describeContext(err))
	}
	a.url, a.hops = next, a.hops+1
	return Result{}, false
}

// waitsUntil is when the caller stops waiting for the check: its budget,
// or the deadline when that comes first.
func (a *asking) waitsUntil() time.Time {
	if a.budget.After(a.deadline) {
		return a.deadline
	}
	return a.budget
}

// moveSlots makes the check hold a slot for next's host, where a
// redirect leads, instead of the one it holds: per_host bounds the
// requests a host is sent, whichever host's URL led to it. It gives its
// slots back before it waits, so a check that waits for a busy (or
// hanging) host holds none that other checks need, and it waits no
// longer than the caller's budget.
func (a *asking) moveSlots(next *url.URL) error {
	if next.Host == a.url.Host {
		return nil
	}
	a.release()
	a.release = func() {}
	ctx, cancel := context.WithDeadline(context.Background(), a.waitsUntil())
	defer cancel()
	release, err := a.c.acquire(ctx, next.Host)
	if err != nil {
		return err
	}
	a.release = release
	return nil
}

// failed is the result of a check that met err.
func (a *asking) failed(err error) Result {
	if errors.Is(err, ErrForbidden) {
		return Result{URL: a.raw, Outcome: Forbidden, Detail: describe(err, a.c.cfg.Timeout)}
	}
	return Result{URL: a.raw, Outcome: Failed, Detail: describe(err, a.c.cfg.Timeout)}
}
