// Package config is the configuration of one translator process: the
// YAML file or the embedded default (configload.go), the environment that
// overrides it, the defaults of every optional field (config.go), the
// broker connections and their TLS (connection.go, tls.go). Load and Parse
// check everything at once and name the file, the line and the field of
// each problem; nothing else in the process reads YAML or the
// environment.
package config

import (
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

// Config is the whole configuration of one translator process.
type Config struct {
	// ClientID is the Pulse client id: every exchange and queue the process
	// declares is named exchange/<ClientID>/… or queue/<ClientID>/….
	// Required; PULSE_CLIENT_ID overrides it.
	ClientID string `yaml:"client_id"`
	// Connection is the AMQP URL (amqp:// or amqps://, with user, password
	// and vhost), or the URLs of a cluster's nodes: a list, or one string
	// with commas. The process connects to one node, in an order shuffled
	// per process, and to the next that answers when it loses it.
	// Optional, default amqp://guest:guest@127.0.0.1:5672/;
	// PULSE_CONNECTION_STRING overrides it. Never logged with its password.
	Connection Connections `yaml:"connection"`
	// ConnectionFile names a file holding the connection string (or the
	// URLs of a cluster's nodes, separated by commas or newlines), read
	// again at every connect and watched for changes: a Kubernetes Secret
	// mounted as a volume, which the kubelet updates in place when the
	// Secret is rotated, reaches the process without a restart. Relative
	// to the config file; PULSE_CONNECTION_STRING_FILE overrides it.
	// Optional; instead of connection.
	ConnectionFile string `yaml:"connection_file"`
	// ConnectionCommand is a program and its arguments, run at every
	// connect and ahead of its credentials' expiry, that prints the
	// connection string, or JSON {"connection": "amqps://…", "expires":
	// "<RFC 3339 time>"} (the pattern of git's credential helpers and of
	// AWS credential_process). Its standard error is logged, passwords
	// hidden. Optional; instead of connection.
	ConnectionCommand []string `yaml:"connection_command"`
	// RecycleInterval, when set, replaces the broker connection with a new
	// one this often, to the next node when there are several, make
	// before break: the new connection consumes before the old one stops,
	// and the old one finishes its messages. Optional, default off.
	RecycleInterval time.Duration `yaml:"recycle_interval"`
	// TLS configures amqps:// connections. Optional: by default the
	// broker's certificate is verified against the system's authorities.
	TLS TLSConfig `yaml:"tls"`
	// PublishTimeout bounds how long one attempt of a publish waits for
	// the broker's confirms. Optional, default 30s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// PublishAttempts is how many times a publish the broker does not
	// take is tried, with backoff, before the message is parked with
	// class unpublishable. Optional, default 36: the backoff between
	// them adds up to 2.5 to 5 minutes, which outlasts the nacks of a
	// quorum queue whose leader's node died (over a minute measured in
	// TestClusterNodeLoss). An output the broker nacks or does not
	// confirm is not tried again in hand: the message waits in a wait
	// queue, until the wait deadline.
	PublishAttempts int `yaml:"publish_attempts"`
	// PublishChannels is how many confirm channels the process publishes
	// on, shared by all its messages. Optional, default 1.
	PublishChannels int `yaml:"publish_channels"`
	// DeclareUpstream makes the pipelines declare their upstream exchanges
	// (durable topic) when missing. Optional, default false; only for a
	// local broker, as a Pulse user may not declare them.
	DeclareUpstream bool `yaml:"declare_upstream"`
	// Pipelines are the pipelines to run. At least one is required.
	Pipelines []PipelineConfig `yaml:"pipelines"`

	// source names where the config came from, for messages.
	source string
	// connectionFromFile is set once Connection holds what
	// ConnectionFile held.
	connectionFromFile bool
}

// TLSConfig configures the TLS of amqps:// connections. Paths are
// relative to the config file.
type TLSConfig struct {
	// CAFile is a PEM file of the authorities that may sign the broker's
	// certificate, instead of the system's. Optional.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that ask for one. Optional; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// PipelineConfig is one pipeline: upstream bindings, a translator, rules,
// and normalized output exchanges.
type PipelineConfig struct {
	// Name names the pipeline and its queues: queue/<client>/<name> and
	// queue/<client>/<name>/dead. Required; letters, digits, '.', '_' and '-'.
	Name string `yaml:"name"`
	// Translator names a registered translator plugin. Required.
	Translator string `yaml:"translator"`
	// Bindings are the upstream exchanges and routing-key patterns the input
	// queue is bound to. At least one is required.
	Bindings []BindingConfig `yaml:"bindings"`
	// Outputs are the exchanges the pipeline publishes to; a translator
	// output goes to the one its To field names, or to the first. At least
	// one is required.
	Outputs []OutputConfig `yaml:"outputs"`
	// Rules are rule files, applied in order: paths relative to the config
	// file, or builtin:NAME for a file shipped in rules/. Optional.
	Rules []string `yaml:"rules"`
	// Prefetch is the consumer prefetch of each consumer: how many
	// messages it has in flight at once, each handled on its own.
	// Optional, default 128.
	Prefetch int `yaml:"prefetch"`
	// Consumers is how many consumers (each with its own channel) this
	// process runs on the input queue. Optional, default 1.
	Consumers int `yaml:"consumers"`
	// Limits bound what one input may cause.
	Limits LimitsConfig `yaml:"limits"`
	// Queue configures the input queue.
	Queue QueueConfig `yaml:"queue"`
	// Wait configures the pipeline's wait queues: how messages whose
	// artifacts do not exist yet (when the rules have wait_for), or whose
	// outputs a consumer's queue refused, wait.
	Wait WaitConfig `yaml:"wait"`

	// translatorAt is where the translator field is ("file:line"), for
	// messages about it.
	translatorAt string
}

// TranslatorAt says where the pipeline's translator field is written:
// "file:line", or the config's name when the line is unknown.
func (p PipelineConfig) TranslatorAt() string { return p.translatorAt }

// BindingConfig binds the input queue to an upstream exchange.
type BindingConfig struct {
	// Exchange is the upstream exchange, for example "exchange/build/".
	// Required; Pulse lets a client read only exchanges named exchange/….
	Exchange string `yaml:"exchange"`
	// RoutingKeys are topic patterns, for example "#.finished". At least one
	// is required.
	RoutingKeys []string `yaml:"routing_keys"`
}

// Envelope names how an output's body is shaped.
type Envelope string

// Envelopes.
const (
	// EnvelopeMozillaPulse wraps the payload as mozillapulse consumers read
	// it: {"payload": …, "_meta": {"exchange", "routing_key", "serializer", "sent"}}.
	EnvelopeMozillaPulse Envelope = "mozillapulse"
	// EnvelopeBare publishes the payload alone, as taskcluster consumers read it.
	EnvelopeBare Envelope = "bare"
)

// OutputConfig is one normalized output exchange.
type OutputConfig struct {
	// Name is what a translator output's To field names. Optional, default
	// the exchange's name without the exchange/<client>/ prefix.
	Name string `yaml:"name"`
	// Exchange is exchange/<client>/<name>, or just <name>, which is
	// prefixed. Required. Declared as a durable topic exchange.
	Exchange string `yaml:"exchange"`
	// Envelope is mozillapulse or bare. Optional, default mozillapulse.
	Envelope Envelope `yaml:"envelope"`
}

// LimitsConfig bounds what one input message may cause. Past a limit
// the message is parked, with its own class, before more is built.
type LimitsConfig struct {
	// MaxInputBytes is the largest body of an input that is read (class
	// too_large, checked before anything else is done with it). Its
	// parked copy keeps only the first 64 KiB of the body, with the
	// original size and SHA-256 in its headers. Optional, default 4194304
	// (4 MiB). What arrives at all is bounded by the broker's
	// max_message_size.
	MaxInputBytes int `yaml:"max_input_bytes"`
	// MaxOutputs is the most outputs one input may give (class
	// too_many_outputs). Optional, default 1000.
	MaxOutputs int `yaml:"max_outputs"`
	// MaxOutputBytes is the largest total size of the bodies of one
	// input's outputs (class outputs_too_large). Optional, default
	// 4194304 (4 MiB).
	MaxOutputBytes int `yaml:"max_output_bytes"`
}

// QueueConfig configures the input and dead queues of a pipeline.
type QueueConfig struct {
	// MaxLength caps the input queue; past it the oldest messages are
	// dead-lettered into the dead queue (reason "maxlen"). Optional,
	// default 10000 (Pulse deletes queues that grow past its own limit).
	MaxLength int `yaml:"max_length"`
	// DeadMaxLength caps the dead queue. Optional, default 10000.
	DeadMaxLength int `yaml:"dead_max_length"`
	// DeadMaxBytes caps the bytes of the dead queue's message bodies
	// (x-max-length-bytes); past it, as past dead_max_length, the oldest
	// parked messages are dropped. Optional, default 268435456 (256 MiB).
	DeadMaxBytes int64 `yaml:"dead_max_bytes"`
	// Type is classic or quorum, for the input, dead and wait queues
	// alike. Quorum queues are replicated over a cluster's nodes and
	// survive the loss of a minority of them. Optional, default classic.
	// RabbitMQ cannot change the type of an existing queue: start-up
	// refuses a change and says what to do.
	Type string `yaml:"type"`
	// DeliveryLimit is, for quorum queues, how many times the input queue
	// delivers a message that comes back unsettled (its consumer crashed or
	// lost its connection) before it dead-letters it into the dead queue
	// (class delivery_limit), so that a message which kills its consumer
	// does not loop. Optional, default 20; classic queues have none.
	DeliveryLimit int `yaml:"delivery_limit"`
}

// Queue types.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// Deadline actions: what becomes of a message whose artifacts still do not
// exist at its deadline.
const (
	// OnDeadlineDead parks it in the dead queue, class artifacts_missing,
	// with the URLs and what they answered in its reason.
	OnDeadlineDead = "dead"
	// OnDeadlinePublish publishes it, with the payload field
	// artifacts_unconfirmed listing the URLs that never answered ready.
	OnDeadlinePublish = "publish"
)

// WaitConfig configures a pipeline's readiness gate and wait queues. A
// message whose artifacts are missing, or whose outputs a queue bound to
// the output exchange refused, is published, with a confirm, to the wait
// queue of a tier, queue/<client>/<pipeline>/wait/<tier>, whose TTL is
// the tier; when it expires RabbitMQ dead-letters it back into the input
// queue through queue/<client>/<pipeline>/hold (HoldExchange), and it is
// processed again. Every pipeline has wait queues, also one whose rules wait for
// no artifact.
type WaitConfig struct {
	// Tiers are the wait queues' TTLs, ascending: the first wait uses the
	// first tier, the second the second, and so on, the last repeating.
	// Optional, default [15s, 1m, 5m].
	Tiers []time.Duration `yaml:"tiers"`
	// Deadline is how long after a message was first seen its artifacts may
	// take to appear. Optional, default 10m.
	Deadline time.Duration `yaml:"deadline"`
	// OnDeadline is dead or publish (see OnDeadlineDead). Optional,
	// default dead.
	OnDeadline string `yaml:"on_deadline"`
	// MaxLength caps each wait queue; past it the queue refuses new
	// messages, and a message that should wait is parked in the dead queue
	// with class wait_queue_full instead. Optional, default 100000.
	MaxLength int `yaml:"max_length"`
	// MaxBytes caps the bytes of each wait queue's message bodies
	// (x-max-length-bytes), as max_length caps their count. Optional,
	// default 1073741824 (1 GiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// Check tunes the HTTP checks of the artifacts.
	Check CheckConfig `yaml:"check"`
}

// CheckConfig tunes the HTTP checks of the readiness gate.
type CheckConfig struct {
	// Timeout bounds one check, redirects included, also when the
	// message it was for went on to a wait queue (a ready answer that
	// comes late is remembered). Optional, default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency bounds the checks in flight overall. Optional, default 64.
	Concurrency int `yaml:"concurrency"`
	// PerHost bounds the checks in flight to one host (its name in any
	// spelling, and port), and, once it has answered none of them for
	// half a second, the checks that may wait for it. Optional, default
	// 32. A host that stops answering thus holds at most 2 × per_host
	// messages, until its checks miss their budget five times in a row;
	// then it is not asked for 10s (doubling up to 80s), and its
	// messages go to their wait queue at once.
	PerHost int `yaml:"per_host"`
	// Cache is how long a ready answer is remembered. Optional, default
	// 1m; -1s turns the cache off.
	Cache time.Duration `yaml:"cache"`
	// Budget bounds the checks of one message: what cannot start or end
	// within it counts as not yet, and the message goes to its wait queue
	// at once, so that a slow or hanging host holds up only its own
	// messages. Optional, default 5s.
	Budget time.Duration `yaml:"budget"`
	// Allow lists where checks may go: hosts ("archive.mozilla.org", in
	// any case), hosts with ports, domains ("*.mozilla.org") or URL
	// prefixes with a path ("https://host/pub/", matched on whole path
	// segments); URLs are parsed and compared by scheme, host, port and
	// cleaned path, and redirects must stay within the list. A message
	// that waits for a URL outside it is refused (bad_artifact_url).
	// Optional: without it, any host but loopback, link-local, private
	// and other special-purpose addresses.
	Allow []string `yaml:"allow"`
	// AllowPrivate lets checks reach loopback, link-local, private and
	// other special-purpose addresses when there is no allow list.
	// Optional, default false: an upstream message must not make the
	// translator probe internal services.
	AllowPrivate bool `yaml:"allow_private"`
	// ProxyFromEnvironment sends the checks through the proxy that
	// HTTP_PROXY, HTTPS_PROXY and NO_PROXY name when the pipeline starts.
	// The allow list and the refusal of private literal addresses and
	// names still apply to every URL; the addresses names resolve to are
	// then the proxy's to check. Optional, default false.
	ProxyFromEnvironment bool `yaml:"proxy_from_environment"`
}

// Policy is where the pipeline's artifact checks may go.
func (c CheckConfig) Policy() urlpolicy.Policy {
	return urlpolicy.Policy{Allow: c.Allow, AllowPrivate: c.AllowPrivate}
}

// TierFor returns the index of the tier a message waits in: the attempt's
// own tier (the last one repeating), or, when that would overshoot the
// remaining time to the deadline, the shortest tier that reaches it.
func (w WaitConfig) TierFor(attempt int, remaining time.Duration) int {
	i := min(max(attempt, 0), len(w.Tiers)-1)
	if w.Tiers[i] <= remaining {
		return i
	}
	for j := range i {
		if w.Tiers[j] >= remaining {
			return j
		}
	}
	return i
}

// Defaults.
const (
	DefaultConnection      = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultPublishTimeout  = 30 * time.Second
	DefaultPublishAttempts = 36
	DefaultPublishChannels = 1
	DefaultPrefetch        = 128
	DefaultConsumers       = 1
	DefaultMaxOutputs      = 1000
	DefaultMaxOutputBytes  = 4 << 20
	DefaultMaxInputBytes   = 4 << 20
	DefaultDeadMaxBytes    = 256 << 20
	DefaultWaitMaxBytes    = 1 << 30
	DefaultCheckBudget     = 5 * time.Second
	DefaultMaxLength       = 10000
	DefaultWaitDeadline    = 10 * time.Minute
	DefaultWaitMaxLength   = 100000
	DefaultDeliveryLimit   = 20
)

// DefaultWaitTiers are the wait tiers of a pipeline that sets none.
var DefaultWaitTiers = []time.Duration{15 * time.Second, time.Minute, 5 * time.Minute}

// setDefaults fills every optional field left empty.
func (c *Config) setDefaults() {
	if len(c.Connection) == 0 && c.ConnectionFile == "" && len(c.ConnectionCommand) == 0 {
		c.Connection = Connections{DefaultConnection}
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.PublishAttempts == 0 {
		c.PublishAttempts = DefaultPublishAttempts
	}
	if c.PublishChannels == 0 {
		c.PublishChannels = DefaultPublishChannels
	}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		if p.Prefetch == 0 {
			p.Prefetch = DefaultPrefetch
		}
		if p.Consumers == 0 {
			p.Consumers = DefaultConsumers
		}
		if p.Limits.MaxOutputs == 0 {
			p.Limits.MaxOutputs = DefaultMaxOutputs
		}
		if p.Limits.MaxOutputBytes == 0 {
			p.Limits.MaxOutputBytes = DefaultMaxOutputBytes
		}
		if p.Limits.MaxInputBytes == 0 {
			p.Limits.MaxInputBytes = DefaultMaxInputBytes
		}
		if p.Queue.DeadMaxBytes == 0 {
			p.Queue.DeadMaxBytes = DefaultDeadMaxBytes
		}
		if p.Wait.MaxBytes == 0 {
			p.Wait.MaxBytes = DefaultWaitMaxBytes
		}
		if p.Wait.Check.Budget == 0 {
			p.Wait.Check.Budget = DefaultCheckBudget
		}
		if p.Queue.MaxLength == 0 {
			p.Queue.MaxLength = DefaultMaxLength
		}
		if p.Queue.DeadMaxLength == 0 {
			p.Queue.DeadMaxLength = DefaultMaxLength
		}
		if p.Queue.Type == "" {
			p.Queue.Type = QueueClassic
		}
		if p.Queue.Type == QueueQuorum && p.Queue.DeliveryLimit == 0 {
			p.Queue.DeliveryLimit = DefaultDeliveryLimit
		}
		if len(p.Wait.Tiers) == 0 {
			p.Wait.Tiers = DefaultWaitTiers
		}
		if p.Wait.Deadline == 0 {
			p.Wait.Deadline = DefaultWaitDeadline
		}
		if p.Wait.OnDeadline == "" {
			p.Wait.OnDeadline = OnDeadlineDead
		}
		if p.Wait.MaxLength == 0 {
			p.Wait.MaxLength = DefaultWaitMaxLength
		}
		for j := range p.Outputs {
			o := &p.Outputs[j]
			if o.Envelope == "" {
				o.Envelope = EnvelopeMozillaPulse
			}
			o.Exchange = pulse.ExchangeName(c.ClientID, o.Exchange)
			if o.Name == "" {
				o.Name = pulse.ShortName(c.ClientID, o.Exchange)
			}
		}
	}
}

// Source names where the config came from: a file path, or "embedded default".
func (c *Config) Source() string { return c.source }
