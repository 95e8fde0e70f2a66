package urlpolicy_test

import (
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

// TestAllowListMatchesParsedURLs: entries match the URL's parts, parsed
// and normalised, never its text: host names in any case, a host's
// default port written or not, paths on whole segments after their dot
// segments are resolved.
func TestAllowListMatchesParsedURLs(t *testing.T) {
	permit := func(entry, raw string) error { return urlpolicy.Policy{Allow: []string{entry}}.Permit(raw) }
	for _, tc := range []struct{ entry, raw string }{
		{"LOGS.example", "http://logs.EXAMPLE/x"},
		{"logs.example", "http://logs.example./x"},
		{"logs.example:80", "http://LOGS.example/x"},
		{"logs.example:443", "https://logs.example/x"},
		{"*.Mozilla.org", "http://FTP.mozilla.ORG/pub/x"},
		{"https://archive.mozilla.org/pub/", "https://ARCHIVE.mozilla.org:443/pub/firefox/x"},
		{"https://archive.mozilla.org/pub", "https://archive.mozilla.org/pub"},
		{"http://logs.example/", "http://logs.example/anything/at/all"},
		{"bücher.example", "http://xn--bcher-kva.example/x"},
		{"xn--bcher-kva.example", "http://BÜCHER.example/x"},
		{"[2001:db8::1]", "http://[2001:DB8:0::1]/x"},
	} {
		if err := permit(tc.entry, tc.raw); err != nil {
			t.Errorf("allow %q, %s: %v", tc.entry, tc.raw, err)
		}
	}
	for _, tc := range []struct{ entry, raw string }{
		{"logs.example", "http://logs.example.evil.example/x"},
		{"logs.example", "http://logs.example@evil.example/x"},
		{"logs.example:80", "http://logs.example:8080/x"},
		{"logs.example:443", "http://logs.example/x"},
		{"*.mozilla.org", "http://evilmozilla.org/x"},
		{"https://archive.mozilla.org/pub/", "http://archive.mozilla.org/pub/x"},
		{"https://archive.mozilla.org/pub/", "https://archive.mozilla.org:8443/pub/x"},
		{"https://archive.mozilla.org/pub/", "https://archive.mozilla.org/public/x"},
		{"https://archive.mozilla.org/pub/", "https://archive.mozilla.org/pub/../private/x"},
		{"https://archive.mozilla.org/pub/", "https://archive.mozilla.org/pub/%2e%2e/private/x"},
		{"https://archive.mozilla.org/pub/", "https://archive.mozilla.org/pubx"},
	} {
		if err := permit(tc.entry, tc.raw); err == nil {
			t.Errorf("allow %q lets %s through", tc.entry, tc.raw)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://user:s3cret@host/log.txt":        "https://xxxxx@host/log.txt",
		"https://ghp_s3cret@host/log.txt":         "https://xxxxx@host/log.txt",
		"https://host/path/with@sign/log.txt":     "https://host/path/with@sign/log.txt",
		"https://host/log.txt":                    "https://host/log.txt",
		"https://user:s3cret@host:bad%zz/log.txt": "(an unparseable URL with an @)",
	} {
		if got := urlpolicy.RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestNormalisedTarget: every spelling of a host and port is one target.
func TestNormalisedTarget(t *testing.T) {
	for raw, want := range map[string]string{
		"HTTP://Logs.Example:80/x":      "logs.example:80",
		"http://logs.example./x":        "logs.example:80",
		"https://LOGS.example/x":        "logs.example:443",
		"https://logs.example:8443/x":   "logs.example:8443",
		"http://bücher.example/x":       "xn--bcher-kva.example:80",
		"http://[2001:DB8:0:0::1]:81/x": "[2001:db8::1]:81",
		"http://user:pw@logs.example/x": "logs.example:80",
	} {
		u, target, err := urlpolicy.Parse(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if got := target.HostPort(); got != want {
			t.Errorf("%s: host %q, want %q", raw, got, want)
		}
		if u.User != nil || strings.Contains(u.String(), "pw") {
			t.Errorf("%s: sent as %s, with its user info", raw, u)
		}
	}
}
