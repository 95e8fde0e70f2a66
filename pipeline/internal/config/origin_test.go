package config_test

import (
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

func TestTopicMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"#", "a.b.c", true},
		{"#", "", true},
		{"#.finished", "build.x.finished", true},
		{"#.finished", "finished", true},
		{"#.finished", "build.finished.not", false},
		{"*.finished", "build.finished", true},
		{"*.finished", "a.b.finished", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.c", false},
		{"a.#.c", "a.c", true},
		{"a.#.c", "a.x.y.c", true},
		{"a.#.#.c", "a.x.c", true},
		{"exact.key", "exact.key", true},
		{"exact.key", "exact.keys", false},
	} {
		if got := pulse.TopicMatches(tc.pattern, tc.key); got != tc.want {
			t.Errorf("TopicMatches(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}

// TestBoundOrigin: an origin is believed only when the pipeline binds
// that exchange with a pattern matching the key; otherwise the one bound
// exchange that matches the key stands in, and none or two make it
// unknown.
func TestBoundOrigin(t *testing.T) {
	p := config.PipelineConfig{Bindings: []config.BindingConfig{
		{Exchange: "exchange/build/", RoutingKeys: []string{"#.log_uploaded", "#.finished"}},
		{Exchange: "exchange/hg/", RoutingKeys: []string{"push.#"}},
		{Exchange: "exchange/other/", RoutingKeys: []string{"push.#"}},
	}}
	for _, tc := range []struct {
		exchange, key, want string
		ok                  bool
	}{
		{"exchange/build/", "a.b.finished", "exchange/build/", true},
		{"exchange/someone-else/secret", "a.b.finished", "exchange/build/", true},
		{"", "a.b.log_uploaded", "exchange/build/", true},
		{"exchange/hg/", "push.1", "exchange/hg/", true},
		{"exchange/forged/", "push.1", "", false},
		{"exchange/build/", "push.1", "", false},
		{"exchange/build/", "unbound.key", "", false},
	} {
		got, ok := p.BoundOrigin(tc.exchange, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("BoundOrigin(%q, %q) = %q, %v; want %q, %v", tc.exchange, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}
