package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"go.yaml.in/yaml/v3"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
	"github.com/pulsetranslator/pulsetranslator/rules"
)

// Environment variables that override the config.
const (
	EnvClientID       = "PULSE_CLIENT_ID"
	EnvConnection     = "PULSE_CONNECTION_STRING"
	EnvConnectionFile = "PULSE_CONNECTION_STRING_FILE"
)

//go:embed default.yaml
var defaultConfig []byte

// DefaultSource is the Source of the embedded default config.
const DefaultSource = "embedded default config"

// LoadDefault returns the embedded default config, with the environment
// applied.
func LoadDefault() (*Config, error) { return Parse(DefaultSource, defaultConfig) }

// DefaultYAML returns the text of the embedded default config.
func DefaultYAML() []byte { return bytes.Clone(defaultConfig) }

// LoadOrDefault loads the config file at path, or the embedded default
// when path is empty: what a command's --config flag means.
func LoadOrDefault(path string) (*Config, error) {
	if strings.TrimSpace(path) == "" {
		return LoadDefault()
	}
	return Load(path)
}

// Load reads, checks and completes the config file at path, with the
// environment applied. Every error names the file, the line and the field.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// Rule files, TLS files and the connection file are relative to the
	// config file.
	dir := filepath.Dir(path)
	cfg, err := parse(path, dir, data)
	if err != nil {
		return nil, err
	}
	for _, f := range []*string{&cfg.TLS.CAFile, &cfg.TLS.CertFile, &cfg.TLS.KeyFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(dir, *f)
		}
	}
	for i := range cfg.Pipelines {
		for j, r := range cfg.Pipelines[i].Rules {
			if !strings.HasPrefix(r, rules.BuiltinPrefix) && !filepath.IsAbs(r) {
				cfg.Pipelines[i].Rules[j] = filepath.Join(dir, r)
			}
		}
	}
	return cfg, nil
}

// lineFirst matches a decoder message that starts with its line.
var lineFirst = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)

// Parse checks and completes a config; source names it in errors.
func Parse(source string, data []byte) (*Config, error) { return parse(source, "", data) }

// parse is Parse, with a relative connection_file taken relative to dir.
func parse(source, dir string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cfg := &Config{source: source}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		msg = unknownField(strings.TrimPrefix(msg, "yaml: "))
		// "line 5: ..." as "file:5: ...", as every other error says it.
		if m := lineFirst.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", source, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %s", source, msg)
	}
	if v := os.Getenv(EnvClientID); v != "" {
		cfg.ClientID = v
	}
	if cfg.ConnectionFile != "" && dir != "" && !filepath.IsAbs(cfg.ConnectionFile) {
		cfg.ConnectionFile = filepath.Join(dir, cfg.ConnectionFile)
	}
	if err := cfg.connectionFromEnvironment(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	cfg.setDefaults()
	if err := cfg.validate(&root); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks the config and returns every problem at once.
func (c *Config) Validate() error { return c.validate(nil) }

func (c *Config) validate(root *yaml.Node) error {
	var errs []error
	fail := func(path string, format string, args ...any) {
		where := c.source
		if line := lineOf(root, path); line > 0 {
			where += ":" + strconv.Itoa(line)
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s", where, path, fmt.Sprintf(format, args...)))
	}
	if c.ClientID == "" {
		fail("client_id", "required: set client_id or %s to your Pulse client id", EnvClientID)
	} else if !pulse.ValidName(c.ClientID) {
		fail("client_id", "%q is not a Pulse client id (letters, digits, '.', '_', '-')", c.ClientID)
	}
	c.checkConnectionSource(fail)
	tlsSchemes := 0
	for i, raw := range c.Connection {
		at := "connection"
		if len(c.Connection) > 1 {
			at = fmt.Sprintf("connection[%d]", i)
		}
		if err := checkConnection(raw); err != nil {
			fail(at, "%v", err)
		}
		if strings.HasPrefix(raw, "amqps:") {
			tlsSchemes++
		}
	}
	if tlsSchemes != 0 && tlsSchemes != len(c.Connection) {
		fail("connection", "mixes amqps:// and amqp:// nodes; the nodes of one broker use one scheme")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		fail("tls", "give both cert_file and key_file, or neither")
	}
	if c.PublishTimeout < 0 {
		fail("publish_timeout", "must be positive, for example 30s")
	}
	if c.PublishAttempts < 0 || c.PublishAttempts > 100 {
		fail("publish_attempts", "%d: use 1 to 100", c.PublishAttempts)
	}
	if c.PublishChannels < 0 || c.PublishChannels > 64 {
		fail("publish_channels", "%d: use 1 to 64", c.PublishChannels)
	}
	if len(c.Pipelines) == 0 {
		fail("pipelines", "at least one pipeline is required")
	}
	names := map[string]bool{}
	for i, p := range c.Pipelines {
		at := fmt.Sprintf("pipelines[%d]", i)
		c.Pipelines[i].translatorAt = c.source
		if line := lineOf(root, at+".translator"); line > 0 {
			c.Pipelines[i].translatorAt += ":" + strconv.Itoa(line)
		}
		switch {
		case p.Name == "":
			fail(at+".name", "required")
		case !pulse.ValidName(p.Name):
			fail(at+".name", "%q: use letters, digits, '.', '_' and '-'", p.Name)
		case names[p.Name]:
			fail(at+".name", "%q is used by an earlier pipeline; names must be unique", p.Name)
		}
		names[p.Name] = true
		if p.Translator == "" {
			fail(at+".translator", "required: name a translator plugin")
		}
		if len(p.Bindings) == 0 {
			fail(at+".bindings", "at least one binding (exchange and routing_keys) is required")
		}
		for j, b := range p.Bindings {
			bat := fmt.Sprintf("%s.bindings[%d]", at, j)
			if !strings.HasPrefix(b.Exchange, "exchange/") {
				fail(bat+".exchange", "%q: Pulse lets a client read only exchanges named exchange/…", b.Exchange)
			}
			if len(b.RoutingKeys) == 0 {
				fail(bat+".routing_keys", "at least one routing-key pattern is required, for example '#'")
			}
			for k, key := range b.RoutingKeys {
				if key == "" || len(key) > 255 {
					fail(fmt.Sprintf("%s.routing_keys[%d]", bat, k), "a pattern must have 1 to 255 characters")
				}
			}
		}
		if len(p.Outputs) == 0 {
			fail(at+".outputs", "at least one output exchange is required")
		}
		outs := map[string]bool{}
		for j, o := range p.Outputs {
			oat := fmt.Sprintf("%s.outputs[%d]", at, j)
			if c.ClientID != "" {
				if err := pulse.CheckOwnExchange(c.ClientID, o.Exchange); err != nil {
					fail(oat+".exchange", "%v", err)
				}
			}
			if o.Envelope != EnvelopeMozillaPulse && o.Envelope != EnvelopeBare {
				fail(oat+".envelope", "%q: use %s or %s", o.Envelope, EnvelopeMozillaPulse, EnvelopeBare)
			}
			if outs[o.Name] {
				fail(oat+".name", "%q is used by an earlier output of this pipeline", o.Name)
			}
			outs[o.Name] = true
		}
		if p.Prefetch < 0 || p.Prefetch > 65535 {
			fail(at+".prefetch", "%d: use 1 to 65535", p.Prefetch)
		}
		if p.Consumers < 0 || p.Consumers > 256 {
			fail(at+".consumers", "%d: use 1 to 256", p.Consumers)
		}
		if p.Limits.MaxOutputs < 0 {
			fail(at+".limits.max_outputs", "must be positive, for example 1000")
		}
		if p.Limits.MaxOutputBytes < 0 {
			fail(at+".limits.max_output_bytes", "must be positive, for example 4194304")
		}
		if p.Limits.MaxInputBytes < 0 || (p.Limits.MaxInputBytes > 0 && p.Limits.MaxInputBytes < 1024) {
			fail(at+".limits.max_input_bytes", "%d: use at least 1024, for example 4194304", p.Limits.MaxInputBytes)
		}
		if p.Queue.MaxLength < 0 {
			fail(at+".queue.max_length", "must be positive")
		}
		if p.Queue.DeadMaxLength < 0 {
			fail(at+".queue.dead_max_length", "must be positive")
		}
		if p.Queue.DeadMaxBytes < 0 {
			fail(at+".queue.dead_max_bytes", "must be positive, for example 268435456")
		}
		if p.Queue.Type != QueueClassic && p.Queue.Type != QueueQuorum {
			fail(at+".queue.type", "%q: use classic or quorum", p.Queue.Type)
		}
		switch {
		case p.Queue.DeliveryLimit < 0:
			fail(at+".queue.delivery_limit", "must be positive, for example 20")
		case p.Queue.DeliveryLimit > 0 && p.Queue.Type != QueueQuorum:
			fail(at+".queue.delivery_limit", "only quorum queues have a delivery limit: set queue.type: quorum, or remove delivery_limit")
		}
		validateWait(p.Wait, at+".wait", fail)
	}
	return errors.Join(errs...)
}

// validateWait checks a pipeline's wait section.
func validateWait(w WaitConfig, at string, fail func(path, format string, args ...any)) {
	names := map[string]bool{}
	for i, tier := range w.Tiers {
		tat := fmt.Sprintf("%s.tiers[%d]", at, i)
		switch {
		case tier < time.Millisecond:
			fail(tat, "%s: a tier must be at least 1ms, for example 15s", tier)
		case i > 0 && tier <= w.Tiers[i-1]:
			fail(tat, "%s: tiers must be ascending, each longer than the one before", tier)
		case names[pulse.TierName(tier)]:
			fail(tat, "%s: names the same wait queue as an earlier tier; tiers are whole milliseconds", tier)
		}
		names[pulse.TierName(tier)] = true
	}
	if w.Deadline <= 0 {
		fail(at+".deadline", "must be positive, for example 10m")
	}
	if w.OnDeadline != OnDeadlineDead && w.OnDeadline != OnDeadlinePublish {
		fail(at+".on_deadline", "%q: use %s or %s", w.OnDeadline, OnDeadlineDead, OnDeadlinePublish)
	}
	if w.MaxLength < 0 {
		fail(at+".max_length", "must be positive")
	}
	if w.MaxBytes < 0 {
		fail(at+".max_bytes", "must be positive, for example 1073741824")
	}
	if w.Check.Timeout < 0 {
		fail(at+".check.timeout", "must be positive, for example 10s")
	}
	if w.Check.Concurrency < 0 || w.Check.PerHost < 0 {
		fail(at+".check", "concurrency and per_host must be positive")
	}
	if w.Check.Budget < 0 {
		fail(at+".check.budget", "must be positive, for example 5s")
	}
	for i, entry := range w.Check.Allow {
		if err := urlpolicy.CheckAllow(entry); err != nil {
			fail(fmt.Sprintf("%s.check.allow[%d]", at, i), "%v", err)
		}
	}
}

// checkConnection checks an AMQP URL without ever echoing its password.
func checkConnection(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL; use amqp://user:password@host:port/vhost (URL-encode '/' and '@' in the password)")
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("scheme %q: use amqps:// (or amqp:// for a local broker)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host; use amqp://user:password@host:port/vhost")
	}
	return nil
}

// lineOf finds the line of a dotted path such as pipelines[0].outputs[1].name
// in a YAML document, or of the nearest parent that exists; 0 if unknown.
func lineOf(root *yaml.Node, path string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	node := root.Content[0]
	line := node.Line
	for _, part := range strings.Split(path, ".") {
		name, index := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			index, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		next := mappingValue(node, name)
		if next == nil {
			return line
		}
		node, line = next, next.Line
		if index >= 0 {
			if node.Kind != yaml.SequenceNode || index >= len(node.Content) {
				return line
			}
			node = node.Content[index]
			line = node.Line
		}
	}
	return line
}

func mappingValue(node *yaml.Node, key string) *yaml.Node {
	if node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i+1]
		}
	}
	return nil
}
