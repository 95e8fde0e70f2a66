// Package urlpolicy says where the readiness gate's artifact checks may
// go, and whether a URL is one the gate checks at all: the one place the
// policy on upstream URLs lives. It parses before it matches (scheme,
// host, port, cleaned path), and guards the addresses a check dials. It
// sends nothing itself; package gate asks over HTTP within it.
package urlpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"

	"code.dny.dev/ssrf"
	"golang.org/x/net/idna"
)

// Policy says where artifact checks may go. The URLs come from upstream
// messages, so without a policy anyone who can publish upstream could
// make the translator probe hosts it can reach and they cannot.
//
// Every URL is parsed before it is matched: its scheme, its host (lower
// case, IDNA, without a trailing dot), its port (the scheme's when none is
// given) and its cleaned path are compared, never the URL's text, so user
// info ("http://allowed@elsewhere/") or a longer host name
// ("http://allowed.evil.example/") matches nothing it should not.
type Policy struct {
	// Allow lists where checks may go: a host ("archive.mozilla.org"), a
	// host and port ("logs.example:8443"), every host of a domain
	// ("*.mozilla.org"), or a URL prefix with a path
	// ("https://host/pub/", matched on whole path segments). Redirects
	// must stay within it too. With a list, the list alone decides, also
	// for hosts whose names resolve to private addresses. Empty: any host
	// but private ones.
	Allow []string
	// AllowPrivate lets checks reach loopback, link-local, private and
	// other special-purpose addresses when Allow is empty.
	AllowPrivate bool
}

// ErrForbidden is the error of a check the policy does not let go where
// the URL (or a redirect, or the host's address) points.
var ErrForbidden = errors.New("the artifact check may not go there")

// MaxURLBytes bounds the length of an artifact URL: a longer one is not
// checked (the message is refused), so that no upstream message can make
// the gate hold, send or remember megabytes of URL.
const MaxURLBytes = 4096

// Target is a URL as the policy compares it.
type Target struct {
	Scheme string
	// Host is lower case, ASCII (IDNA), without brackets or a trailing
	// dot; Port is always set.
	Host, Port string
	// Path is the URL's path, decoded and cleaned ("/" when empty).
	Path string
}

// HostPort is the host and port a check of t connects to: the key of
// the host's slots, the same for every spelling of the host.
func (t Target) HostPort() string { return net.JoinHostPort(t.Host, t.Port) }

// allowEntry is one parsed entry of Policy.Allow.
type allowEntry struct {
	text string
	// scheme is set for URL prefixes only; port is "" for any port.
	scheme, host, port string
	// domain: host and every name under it.
	domain bool
	// prefix is a URL prefix's cleaned path, without a trailing slash
	// ("" for the root).
	prefix string
	isURL  bool
}

// Rules is a Policy compiled, ready to match URLs.
type Rules struct {
	entries      []allowEntry
	allowPrivate bool
	guard        *ssrf.Guardian
}

// Compile parses every entry of p.Allow; the errors name each bad entry.
func (p Policy) Compile() (*Rules, error) {
	c := &Rules{allowPrivate: p.AllowPrivate, guard: ssrf.New(ssrf.WithAnyPort())}
	var errs []error
	for _, entry := range p.Allow {
		e, err := parseEntry(entry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.entries = append(c.entries, e)
	}
	return c, errors.Join(errs...)
}

// CheckAllow reports an entry of an allow list that is none of the forms
// Policy.Allow takes, saying what to write instead.
func CheckAllow(entry string) error {
	_, err := parseEntry(entry)
	return err
}

// parseEntry parses one allow-list entry.
func parseEntry(entry string) (allowEntry, error) {
	e := allowEntry{text: entry}
	hostForms := "give a host (archive.mozilla.org), a host and port (logs.example:8443), *.domain, or a URL prefix with a path (https://host/pub/)"
	if strings.Contains(entry, "://") {
		u, err := url.Parse(entry)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return e, fmt.Errorf("%q: a URL prefix must be an http or https URL with a host and a path, for example https://host/pub/", entry)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
			return e, fmt.Errorf("%q: a URL prefix has no user info, query or fragment; give scheme, host and path, for example https://host/pub/", entry)
		case u.Path == "":
			return e, fmt.Errorf("%q: a URL prefix needs a path: %s/ for the whole host on that scheme and port, or list the host alone (%s) for any scheme", entry, entry, u.Host)
		}
		host, err := normalHost(u.Hostname())
		if err != nil {
			return e, fmt.Errorf("%q: %v", entry, err)
		}
		e.isURL, e.scheme, e.host = true, u.Scheme, host
		e.port = u.Port()
		if e.port == "" {
			e.port = schemePort(u.Scheme)
		}
		e.prefix = strings.TrimSuffix(cleanPath(u.Path), "/")
		return e, nil
	}
	if entry == "" || strings.ContainsAny(entry, "/?#@ ") {
		return e, fmt.Errorf("%q: %s", entry, hostForms)
	}
	name := entry
	if strings.HasPrefix(name, "*.") {
		e.domain = true
		name = name[2:]
		if name == "" {
			return e, fmt.Errorf("%q: give the domain after *.", entry)
		}
	}
	if h, port, err := net.SplitHostPort(name); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return e, fmt.Errorf("%q: %q is not a port; %s", entry, port, hostForms)
		}
		name, e.port = h, port
	}
	host, err := normalHost(strings.Trim(name, "[]"))
	if err != nil {
		return e, fmt.Errorf("%q: %v; %s", entry, err, hostForms)
	}
	e.host = host
	return e, nil
}

// matches reports whether the entry takes t.
func (e allowEntry) matches(t Target) bool {
	switch {
	case e.domain:
		if t.Host != e.host && !strings.HasSuffix(t.Host, "."+e.host) {
			return false
		}
	case t.Host != e.host:
		return false
	}
	if e.port != "" && t.Port != e.port {
		return false
	}
	if !e.isURL {
		return true
	}
	return t.Scheme == e.scheme && (e.prefix == "" || t.Path == e.prefix || strings.HasPrefix(t.Path, e.prefix+"/"))
}

// Permit returns nil when the policy lets a check of raw go ahead, or an
// error wrapping ErrForbidden (or saying what is wrong with the URL or the
// policy). Host names are checked by name here; the addresses they
// resolve to are checked when a check connects.
func (p Policy) Permit(raw string) error {
	c, err := p.Compile()
	if err != nil {
		return err
	}
	_, t, err := Parse(raw)
	if err != nil {
		return err
	}
	return c.Permit(t, raw)
}

// Permit is Policy.Permit of raw, parsed as t: nil, or an error wrapping
// ErrForbidden.
func (c *Rules) Permit(t Target, raw string) error {
	if len(c.entries) > 0 {
		for _, e := range c.entries {
			if e.matches(t) {
				return nil
			}
		}
		names := make([]string, len(c.entries))
		for i, e := range c.entries {
			names[i] = e.text
		}
		return fmt.Errorf("%w: %.200q is not in wait.check.allow (%s)", ErrForbidden, RedactURL(raw), strings.Join(names, ", "))
	}
	if err := c.permitHost(t.Host); err != nil {
		return fmt.Errorf("%w: %.200q %s; set wait.check.allow_private or list the host in wait.check.allow", ErrForbidden, RedactURL(raw), err.Error())
	}
	return nil
}

// permitHost checks a host name or literal address without an allow
// list: names of this machine and special-purpose addresses are refused
// unless private addresses are allowed.
func (c *Rules) permitHost(host string) error {
	if c.allowPrivate {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return errors.New("names this machine")
	}
	if ip, err := netip.ParseAddr(host); err == nil && c.guard.SafeAddr(ip) != nil {
		return errors.New("is a loopback, link-local, private or other special-purpose address")
	}
	return nil
}

// PermitDial checks the address a check is about to dial, host:port as
// net/http asks for it: with an allow list it must be a listed host and
// port; without one it must not name this machine. The addresses a name
// resolves to are checked by Control, as the connection is made.
func (c *Rules) PermitDial(address string) error {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	host, err = normalHost(host)
	if err != nil {
		return err
	}
	if len(c.entries) > 0 {
		for _, e := range c.entries {
			if (e.host == host || e.domain && strings.HasSuffix(host, "."+e.host)) && (e.port == "" || e.port == port) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is not in wait.check.allow", ErrForbidden, address)
	}
	if err := c.permitHost(host); err != nil {
		return fmt.Errorf("%w: %s %s; set wait.check.allow_private or list the host in wait.check.allow", ErrForbidden, address, err.Error())
	}
	return nil
}

// Control is the dialer's Control hook without an allow list: it runs on
// the address a host name resolved to, so a public name that resolves to
// a private address is refused too.
func (c *Rules) Control(network, address string, conn syscall.RawConn) error {
	if err := c.guard.Safe(network, address, conn); err != nil {
		host, _, _ := net.SplitHostPort(address)
		return fmt.Errorf("%w: the host resolves to %s, a loopback, link-local, private or other special-purpose address; set wait.check.allow_private or list the host in wait.check.allow", ErrForbidden, host)
	}
	return nil
}

// GuardsAddresses reports whether Control must run on every connection.
func (c *Rules) GuardsAddresses() bool { return len(c.entries) == 0 && !c.allowPrivate }

// ValidURL reports whether raw is a URL the gate checks: an absolute
// http or https URL with a host, at most MaxURLBytes long. The error
// says what is wrong with it.
func ValidURL(raw string) error {
	_, _, err := Parse(raw)
	return err
}

// Parse parses raw, checks it is what ValidURL asks for, and returns
// it as the request will be sent (host normalised, without user info:
// the gate never sends credentials) and as the policy compares it.
func Parse(raw string) (*url.URL, Target, error) {
	if len(raw) > MaxURLBytes {
		// Not shown: a cut URL may end inside its user info.
		return nil, Target{}, fmt.Errorf("the artifact URL is %d bytes long; the gate checks URLs of at most %d", len(raw), MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error's text quotes the URL whole, password and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, Target{}, fmt.Errorf("%.200q is not a URL: %v", RedactURL(raw), err)
	}
	t, err := TargetOf(u)
	if err != nil {
		return nil, Target{}, fmt.Errorf("%.200q %v", RedactURL(raw), err)
	}
	return u, t, nil
}

// TargetOf normalises u in place for sending (lower-case ASCII host, the
// default port dropped, no user info) and returns what the policy
// compares.
func TargetOf(u *url.URL) (Target, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return Target{}, fmt.Errorf("is a %s URL: only http and https artifact URLs can be checked", strings.ToLower(u.Scheme))
	}
	if u.Host == "" {
		return Target{}, errors.New("has no host")
	}
	host, err := normalHost(u.Hostname())
	if err != nil {
		return Target{}, err
	}
	port := u.Port()
	if port == "" {
		port = schemePort(u.Scheme)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Target{}, fmt.Errorf("has no valid port (%q)", port)
	}
	u.User = nil
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != schemePort(u.Scheme) {
		u.Host = net.JoinHostPort(host, port)
	}
	return Target{Scheme: u.Scheme, Host: host, Port: port, Path: cleanPath(u.Path)}, nil
}

// normalHost is a host name as keys and the policy compare it: lower
// case, IDNA (punycode) for names that are not ASCII, without a trailing
// dot; an IP address in its canonical form.
func normalHost(host string) (string, error) {
	if host == "" {
		return "", errors.New("has no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.WithZone("").String(), nil
	}
	host = strings.TrimSuffix(host, ".")
	ascii := true
	for i := range len(host) {
		if host[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(host), nil
	}
	a, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return "", fmt.Errorf("host %q is not a valid international domain name", host)
	}
	return a, nil
}

// cleanPath is a URL path with its dot segments resolved, as a server
// would read it; "/" when empty.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// schemePort is the port of a scheme's URLs that give none.
func schemePort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
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
