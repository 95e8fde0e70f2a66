package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

const validConfig = `client_id: me
connection: amqps://me:s3cret@pulse.example.com:5671/vhost
pipelines:
  - name: build
    translator: buildbot
    bindings:
      - exchange: exchange/build/
        routing_keys: ['#']
    outputs:
      - exchange: build/normalized
`

func TestParseCompletesDefaults(t *testing.T) {
	t.Setenv(config.EnvClientID, "")
	t.Setenv(config.EnvConnection, "")
	cfg, err := config.Parse("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pipelines[0]
	if p.Outputs[0].Exchange != "exchange/me/build/normalized" || p.Outputs[0].Name != "build/normalized" || p.Outputs[0].Envelope != config.EnvelopeMozillaPulse {
		t.Errorf("output %+v", p.Outputs[0])
	}
	if p.Prefetch != config.DefaultPrefetch || p.Consumers != config.DefaultConsumers || p.Queue.MaxLength != config.DefaultMaxLength || p.Queue.Type != "classic" {
		t.Errorf("defaults not applied: %+v", p)
	}
}

func TestEnvironmentOverridesConfig(t *testing.T) {
	t.Setenv(config.EnvClientID, "fromenv")
	t.Setenv(config.EnvConnection, "amqp://u:p@broker:5672/")
	cfg, err := config.Parse("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "fromenv" || cfg.Connection.Redacted() != "amqp://u:xxxxx@broker:5672/" {
		t.Errorf("client %q connection %q", cfg.ClientID, cfg.Connection)
	}
	if cfg.Pipelines[0].Outputs[0].Exchange != "exchange/fromenv/build/normalized" {
		t.Errorf("output exchange %q does not follow the client id", cfg.Pipelines[0].Outputs[0].Exchange)
	}
}

// TestConnectionList: one URL, a comma-separated string or a YAML list
// give the same nodes, in order; PULSE_CONNECTION_STRING replaces them
// with its own comma-separated list; the redacted form holds no password.
func TestConnectionList(t *testing.T) {
	t.Setenv(config.EnvClientID, "")
	want := []string{"amqps://me:s3cret@a.example.com:5671/vhost", "amqps://me:s3cret@b.example.com:5671/vhost", "amqps://me:s3cret@c.example.com:5671/vhost"}
	for name, yaml := range map[string]string{
		"commas": "connection: 'amqps://me:s3cret@a.example.com:5671/vhost, amqps://me:s3cret@b.example.com:5671/vhost,amqps://me:s3cret@c.example.com:5671/vhost'",
		"list":   "connection:\n  - amqps://me:s3cret@a.example.com:5671/vhost\n  - amqps://me:s3cret@b.example.com:5671/vhost\n  - amqps://me:s3cret@c.example.com:5671/vhost",
		"env":    "connection: amqps://other:other@z.example.com:5671/vhost",
	} {
		t.Run(name, func(t *testing.T) {
			env := ""
			if name == "env" {
				env = strings.Join(want, ",")
			}
			t.Setenv(config.EnvConnection, env)
			cfg, err := config.Parse("c.yaml", []byte(strings.Replace(validConfig, "connection: amqps://me:s3cret@pulse.example.com:5671/vhost", yaml, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(cfg.Connection, " ") != strings.Join(want, " ") {
				t.Errorf("connection = %q, want %q", cfg.Connection, want)
			}
			if r := cfg.Connection.Redacted(); strings.Contains(r, "s3cret") || strings.Count(r, "me:xxxxx@") != 3 {
				t.Errorf("Redacted() = %q", r)
			}
			if !cfg.UsesTLS() {
				t.Error("amqps:// nodes do not use TLS")
			}
		})
	}
}

// TestConfigErrors checks that each mistake stops with the file, the line,
// the field and what to do, and that no error shows the password.
func TestConfigErrors(t *testing.T) {
	t.Setenv(config.EnvClientID, "")
	t.Setenv(config.EnvConnection, "")
	cases := []struct {
		name, from, to string
		want           []string
	}{
		{"exchange outside the namespace", "exchange: build/normalized", "exchange: exchange/other/normalized",
			[]string{"c.yaml:10:", "pipelines[0].outputs[0].exchange", "outside this client's namespace", "exchange/me/<name>"}},
		{"upstream not a Pulse exchange", "exchange: exchange/build/", "exchange: org.mozilla.exchange.build",
			[]string{"c.yaml:7:", "pipelines[0].bindings[0].exchange", "exchange/…"}},
		{"unknown field", "translator: buildbot", "translator: buildbot\n    tranlsator: x",
			[]string{"c.yaml:6:", "tranlsator is no field of a pipeline; did you mean translator?", "its fields: name, translator"}},
		{"no client id", "client_id: me", "client_id: ''",
			[]string{"c.yaml:1:", "client_id", "PULSE_CLIENT_ID"}},
		{"bad scheme", "amqps://", "http://",
			[]string{"c.yaml:2:", "connection", "amqps://"}},
		{"bad node in a list", "connection: amqps://me:s3cret@pulse.example.com:5671/vhost", "connection:\n  - amqps://me:s3cret@a.example.com:5671/vhost\n  - http://me:s3cret@b.example.com/vhost",
			[]string{"c.yaml:4:", "connection[1]", "amqps://"}},
		{"mixed schemes", "connection: amqps://me:s3cret@pulse.example.com:5671/vhost", "connection: 'amqps://me:s3cret@a.example.com:5671/vhost, amqp://me:s3cret@b.example.com/vhost'",
			[]string{"c.yaml:2:", "connection", "one scheme"}},
		{"bad envelope", "exchange: build/normalized", "exchange: build/normalized\n        envelope: xml",
			[]string{"c.yaml:11:", "envelope", "mozillapulse or bare"}},
		{"tiers not ascending", "translator: buildbot", "translator: buildbot\n    wait: {tiers: [1m, 15s]}",
			[]string{"c.yaml:6:", "pipelines[0].wait.tiers[1]", "ascending"}},
		{"bad deadline action", "translator: buildbot", "translator: buildbot\n    wait:\n      on_deadline: drop",
			[]string{"c.yaml:7:", "pipelines[0].wait.on_deadline", "dead or publish"}},
		{"a missing connection file", "connection: amqps://me:s3cret@pulse.example.com:5671/vhost", "connection_file: /nonexistent/connection",
			[]string{"c.yaml:2:", "connection_file", "no such file", "Secret"}},
		{"connection and a file", "client_id: me", "client_id: me\nconnection_file: /etc/hostname",
			[]string{"connection", "give one of connection, connection_file and connection_command"}},
		{"a command that is not there", "connection: amqps://me:s3cret@pulse.example.com:5671/vhost", "connection_command: [/nonexistent/claim]",
			[]string{"c.yaml:2:", "connection_command", "the program's path"}},
		{"recycling too often", "client_id: me", "client_id: me\nrecycle_interval: 10ms",
			[]string{"c.yaml:2:", "recycle_interval", "at least 1s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte(strings.Replace(validConfig, c.from, c.to, 1)))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestWaitDefaultsAndTiers(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Pipelines[0].Wait
	if fmt.Sprint(w.Tiers) != "[15s 1m0s 5m0s]" || w.Deadline != 10*time.Minute || w.OnDeadline != config.OnDeadlineDead {
		t.Errorf("wait defaults %+v", w)
	}
	if got := pulse.WaitQueue("me", "build", 15*time.Second); got != "queue/me/build/wait/15s" {
		t.Errorf("wait queue %q", got)
	}
	for d, want := range map[time.Duration]string{250 * time.Millisecond: "250ms", 90 * time.Second: "90s", 5 * time.Minute: "5m", 2 * time.Hour: "2h"} {
		if got := pulse.TierName(d); got != want {
			t.Errorf("TierName(%s) = %q, want %q", d, got, want)
		}
	}
	cases := []struct {
		attempt   int
		remaining time.Duration
		want      int
	}{
		{0, 10 * time.Minute, 0}, // first wait: first tier
		{1, 9 * time.Minute, 1},  // second: second tier
		{7, 8 * time.Minute, 2},  // later: the last tier repeats
		{7, 40 * time.Second, 1}, // 5m would overshoot: 1m reaches the deadline
		{7, 5 * time.Second, 0},  // the shortest tier reaches it
		{1, 30 * time.Second, 1}, // the own tier is not shortened below what reaches
		{0, time.Second, 0},      // never below the first tier
		{-1, time.Hour, 0},       // a forged attempt counts as the first
	}
	for _, c := range cases {
		if got := w.TierFor(c.attempt, c.remaining); got != c.want {
			t.Errorf("TierFor(%d, %s) = %d, want %d", c.attempt, c.remaining, got, c.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	got := config.RedactURL("amqps://user:pa%2Fss%40word@host:5671/vh")
	if strings.Contains(got, "pa") || !strings.Contains(got, "user") {
		t.Errorf("RedactURL = %q", got)
	}
}

// TestConnectionFile: the file's connection strings (commas or lines) are
// read at start-up, relative to the config file, and checked as
// connection's are; PULSE_CONNECTION_STRING_FILE overrides the config,
// and it and PULSE_CONNECTION_STRING together are an error.
func TestConnectionFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "connection"), []byte("amqps://me:s3cret@a.example.com:5671/vhost\namqps://me:s3cret@b.example.com:5671/vhost\n"), 0o600)
	text := strings.Replace(validConfig, "connection: amqps://me:s3cret@pulse.example.com:5671/vhost", "connection_file: connection", 1)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(text), 0o600)
	cfg, err := config.Load(filepath.Join(dir, "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Connection) != 2 || cfg.ConnectionFile != filepath.Join(dir, "connection") || strings.Contains(cfg.ConnectionSummary(), "s3cret") {
		t.Errorf("connection %d nodes, file %q, shown as %q", len(cfg.Connection), cfg.ConnectionFile, cfg.ConnectionSummary())
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("http://me:s3cret@a.example.com/"), 0o600)
	t.Setenv(config.EnvConnectionFile, other)
	if _, err := config.Parse("c.yaml", []byte(validConfig)); err == nil || !strings.Contains(err.Error(), "amqps://") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the environment's file with an http URL: %v", err)
	}
	t.Setenv(config.EnvConnection, "amqps://me:s3cret@pulse.example.com:5671/vhost")
	if _, err := config.Parse("c.yaml", []byte(validConfig)); err == nil || !strings.Contains(err.Error(), "set one") {
		t.Errorf("both environment variables: %v", err)
	}
}
