package gate

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Policy says where artifact checks may go. The URLs come from upstream
// messages, so without a policy anyone who can publish upstream could
// make the translator probe hosts it can reach and they cannot.
type Policy struct {
	// Allow lists where checks may go: a host ("archive.mozilla.org"), a
	// host and port ("logs.example:8443"), every host of a domain
	// ("*.mozilla.org"), or a URL prefix ("https://host/pub/"). Redirects
	// must stay within it too. Empty: any host but private ones.
	Allow []string
	// AllowPrivate lets checks reach loopback, link-local and private
	// addresses when Allow is empty. With Allow, the list alone decides.
	AllowPrivate bool
}

// ErrForbidden is the error of a check the policy does not let go where
// the URL (or a redirect, or the host's address) points.
var ErrForbidden = errors.New("the artifact check may not go there")

// CheckAllow reports an entry of an allow list that is none of the forms
// Policy.Allow takes.
func CheckAllow(entry string) error {
	switch {
	case strings.Contains(entry, "://"):
		u, err := url.Parse(entry)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q: a URL prefix must be an http or https URL with a host", entry)
		}
	case entry == "" || strings.ContainsAny(entry, "/?# "):
		return fmt.Errorf("%q: give a host (archive.mozilla.org), a host and port, *.domain, or a URL prefix (https://host/path/)", entry)
	case strings.HasPrefix(entry, "*.") && len(entry) < 3:
		return fmt.Errorf("%q: give the domain after *.", entry)
	}
	return nil
}

// Permit returns nil when the policy lets a check of raw go ahead, or an
// error wrapping ErrForbidden (or saying what is wrong with the URL).
// Host names are checked by name here; their addresses are checked when
// a check connects (see the Checker's dialer).
func (p Policy) Permit(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	return p.permit(u, raw)
}

// permit is Permit of raw, parsed as u by parseURL.
func (p Policy) permit(u *url.URL, raw string) error {
	if len(p.Allow) > 0 {
		for _, entry := range p.Allow {
			if allows(entry, u, raw) {
				return nil
			}
		}
		return fmt.Errorf("%w: %.200q is not in wait.check.allow (%s)", ErrForbidden, RedactURL(raw), strings.Join(p.Allow, ", "))
	}
	if p.AllowPrivate {
		return nil
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %.200q names this machine; set wait.check.allow_private or list the host in wait.check.allow", ErrForbidden, RedactURL(raw))
	}
	if ip, err := netip.ParseAddr(host); err == nil && private(ip) {
		return fmt.Errorf("%w: %.200q is a loopback, link-local or private address; set wait.check.allow_private or list it in wait.check.allow", ErrForbidden, RedactURL(raw))
	}
	return nil
}

// allows reports whether one allow-list entry takes u.
func allows(entry string, u *url.URL, raw string) bool {
	host := strings.ToLower(u.Hostname())
	switch {
	case strings.Contains(entry, "://"):
		return strings.HasPrefix(raw, entry)
	case strings.HasPrefix(entry, "*."):
		domain := strings.ToLower(entry[2:])
		return host == domain || strings.HasSuffix(host, "."+domain)
	case strings.Contains(entry, ":") && !strings.HasPrefix(entry, "["):
		// host:port
		return strings.EqualFold(entry, u.Host) || strings.EqualFold(entry, host+":"+defaultPort(u))
	}
	return strings.EqualFold(strings.Trim(entry, "[]"), host)
}

func defaultPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// private reports an address checks must not reach by default: loopback,
// private, link-local, unspecified, multicast, shared (RFC 6598) and the
// cloud metadata services' range among them.
func private(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) || netip.MustParsePrefix("0.0.0.0/8").Contains(ip)
}

// dialControl refuses connections to private addresses: it runs on the
// address a host name resolved to, so a public name that resolves to a
// private address is refused too.
func dialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err == nil && private(ip) {
		return fmt.Errorf("%w: the host resolves to %s, a loopback, link-local or private address; set wait.check.allow_private or list the host in wait.check.allow", ErrForbidden, ip)
	}
	return nil
}
