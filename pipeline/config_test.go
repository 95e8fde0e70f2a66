package pipeline_test

import (
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
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
	t.Setenv(pipeline.EnvClientID, "")
	t.Setenv(pipeline.EnvConnection, "")
	cfg, err := pipeline.Parse("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Pipelines[0]
	if p.Outputs[0].Exchange != "exchange/me/build/normalized" || p.Outputs[0].Name != "build/normalized" || p.Outputs[0].Envelope != pipeline.EnvelopeMozillaPulse {
		t.Errorf("output %+v", p.Outputs[0])
	}
	if p.Prefetch != pipeline.DefaultPrefetch || p.Consumers != pipeline.DefaultConsumers || p.Queue.MaxLength != pipeline.DefaultMaxLength || p.Queue.Type != "classic" {
		t.Errorf("defaults not applied: %+v", p)
	}
}

func TestEnvironmentOverridesConfig(t *testing.T) {
	t.Setenv(pipeline.EnvClientID, "fromenv")
	t.Setenv(pipeline.EnvConnection, "amqp://u:p@broker:5672/")
	cfg, err := pipeline.Parse("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientID != "fromenv" || cfg.Connection != "amqp://u:p@broker:5672/" {
		t.Errorf("client %q connection %q", cfg.ClientID, cfg.Connection)
	}
	if cfg.Pipelines[0].Outputs[0].Exchange != "exchange/fromenv/build/normalized" {
		t.Errorf("output exchange %q does not follow the client id", cfg.Pipelines[0].Outputs[0].Exchange)
	}
}

// TestConfigErrors checks that each mistake stops with the file, the line,
// the field and what to do, and that no error shows the password.
func TestConfigErrors(t *testing.T) {
	t.Setenv(pipeline.EnvClientID, "")
	t.Setenv(pipeline.EnvConnection, "")
	cases := []struct {
		name, from, to string
		want           []string
	}{
		{"exchange outside the namespace", "exchange: build/normalized", "exchange: exchange/other/normalized",
			[]string{"c.yaml:10:", "pipelines[0].outputs[0].exchange", "outside this client's namespace", "exchange/me/<name>"}},
		{"upstream not a Pulse exchange", "exchange: exchange/build/", "exchange: org.mozilla.exchange.build",
			[]string{"c.yaml:7:", "pipelines[0].bindings[0].exchange", "exchange/…"}},
		{"unknown field", "translator: buildbot", "translator: buildbot\n    tranlsator: x",
			[]string{"c.yaml", "line 6", "tranlsator"}},
		{"no client id", "client_id: me", "client_id: ''",
			[]string{"c.yaml:1:", "client_id", "PULSE_CLIENT_ID"}},
		{"bad scheme", "amqps://", "http://",
			[]string{"c.yaml:2:", "connection", "amqps://"}},
		{"bad envelope", "exchange: build/normalized", "exchange: build/normalized\n        envelope: xml",
			[]string{"c.yaml:11:", "envelope", "mozillapulse or bare"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pipeline.Parse("c.yaml", []byte(strings.Replace(validConfig, c.from, c.to, 1)))
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

func TestRedactURL(t *testing.T) {
	got := pipeline.RedactURL("amqps://user:pa%2Fss%40word@host:5671/vh")
	if strings.Contains(got, "pa") || !strings.Contains(got, "user") {
		t.Errorf("RedactURL = %q", got)
	}
}
