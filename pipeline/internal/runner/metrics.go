package runner

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a runner's Prometheus metrics, each labelled by pipeline.
// Labels are bounded: classes and tiers are short fixed names, never
// routing keys or reasons.
type Metrics struct {
	// Consumed counts messages taken from the input queue, redeliveries
	// and returns from the wait queues included.
	Consumed *prometheus.CounterVec
	// Published counts outputs whose publish the broker confirmed.
	Published *prometheus.CounterVec
	// Dropped counts outputs or messages dropped on purpose, by class: the
	// translator's (such as ignored_platform) or rule:<name>.
	Dropped *prometheus.CounterVec
	// Parked counts messages sent to the dead queue, by class.
	Parked *prometheus.CounterVec
	// Waiting counts messages sent to a wait queue, by tier.
	Waiting *prometheus.CounterVec
	// GateChecks counts artifact checks, by outcome (ready, not_yet,
	// failed, forbidden, skipped).
	GateChecks *prometheus.CounterVec
	// GateHostsFailing is the number of artifact hosts not asked now,
	// because they stopped answering (their breaker is open).
	GateHostsFailing *prometheus.GaugeVec
	// ConfirmSeconds observes how long publishes wait for the broker's
	// confirms.
	ConfirmSeconds *prometheus.HistogramVec
	// Retries counts publishes tried again after the broker did not take
	// them, by target (output, wait, dead).
	Retries *prometheus.CounterVec
	// OutputsRefused counts the publishes of a message's outputs that a
	// queue bound to the output exchange refused (cause nack) or did not
	// confirm within the publish timeout (cause no_confirm), in a
	// pipeline whose messages then wait to publish them again.
	OutputsRefused *prometheus.CounterVec
	// QueueMessages is the depth of each queue of a pipeline, by role
	// (input, dead, wait/<tier>), read from the broker every few seconds.
	QueueMessages *prometheus.GaugeVec
	// QueueMaxLength is each queue's cap (x-max-length), by role.
	QueueMaxLength *prometheus.GaugeVec
	// InFlight is the number of messages being handled.
	InFlight *prometheus.GaugeVec
	// Ready is 1 while connected with every pipeline consuming, else 0.
	Ready prometheus.Gauge
	// BrokerBlocked is 1 while RabbitMQ blocks publishing on the
	// connection (connection.blocked: a memory or disk alarm), else 0.
	BrokerBlocked prometheus.Gauge
	// WaitLastReturn is when a waiting message or a canary last came back
	// from a wait queue to this process (see waitwatch.go).
	WaitLastReturn *prometheus.GaugeVec
	// WaitLateness is how long after its TTL a waiting message or canary
	// came back.
	WaitLateness *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pulsetranslator", Name: name, Help: help}, append([]string{"pipeline"}, labels...))
	}
	m := &Metrics{
		Consumed:       counter("consumed_total", "Messages taken from the input queue."),
		Published:      counter("published_total", "Outputs published and confirmed by the broker."),
		Dropped:        counter("dropped_total", "Outputs or messages dropped on purpose, by class.", "class"),
		Parked:         counter("parked_total", "Messages parked in the dead queue, by class.", "class"),
		Waiting:        counter("waiting_total", "Messages sent to a wait queue of the readiness gate, by tier.", "tier"),
		GateChecks:     counter("gate_checks_total", "Artifact checks of the readiness gate, by outcome.", "outcome"),
		Retries:        counter("publish_retries_total", "Publishes tried again after the broker did not take them, by target.", "target"),
		OutputsRefused: counter("outputs_refused_total", "Publishes of outputs that a queue bound to the output exchange refused (nack) or did not confirm in time (no_confirm), by cause; the message waits to publish them again.", "cause"),
		QueueMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "queue_messages",
			Help: "Messages ready in each queue of a pipeline, by queue (input, dead, wait/<tier>), read from the broker every 5s."}, []string{"pipeline", "queue"}),
		QueueMaxLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "queue_max_length",
			Help: "The cap (x-max-length) of each queue of a pipeline, by queue."}, []string{"pipeline", "queue"}),
		GateHostsFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "gate_hosts_failing",
			Help: "Artifact hosts not asked now because they stopped answering their checks (their circuit breaker is open)."}, []string{"pipeline"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "in_flight",
			Help: "Messages being handled now (taken from the input queue, not yet acked)."}, []string{"pipeline"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "ready",
			Help: "1 while connected to the broker with every pipeline consuming, else 0."}),
		BrokerBlocked: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "broker_blocked",
			Help: "1 while RabbitMQ blocks publishing on the connection (connection.blocked: a memory or disk alarm), else 0."}),
		WaitLastReturn: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pulsetranslator", Name: "wait_last_return_timestamp_seconds",
			Help: "When a waiting message, or the canary each process sends through the first wait tier every minute, last came back from a wait queue to this process (Unix time)."}, []string{"pipeline"}),
		WaitLateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pulsetranslator", Name: "wait_return_lateness_seconds",
			Help:    "How long after its wait queue's TTL a waiting message or canary came back.",
			Buckets: []float64{0.5, 1, 5, 15, 60, 180, 600, 1800},
		}, []string{"pipeline"}),
		ConfirmSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pulsetranslator", Name: "publish_confirm_seconds",
			Help:    "Time from publishing a message's outputs (or its waiting or parked copy) to the broker's last confirm, per attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"pipeline"}),
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// collectors are the metrics, to register or describe.
func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Consumed, m.Published, m.Dropped, m.Parked, m.Waiting, m.GateChecks, m.ConfirmSeconds, m.Retries, m.OutputsRefused,
		m.QueueMessages, m.QueueMaxLength, m.GateHostsFailing, m.InFlight, m.Ready, m.BrokerBlocked, m.WaitLastReturn, m.WaitLateness}
}

// MetricNames lists the names of every metric NewMetrics registers, as
// Prometheus exposes them (a histogram's with _bucket, _sum and _count),
// for dashboards and alert rules to be checked against.
func MetricNames() []string {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		panic(err)
	}
	descs := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range m.collectors() {
			c.Describe(descs)
		}
		close(descs)
	}()
	var names []string
	for d := range descs {
		name := descName(d)
		if name == "pulsetranslator_publish_confirm_seconds" || name == "pulsetranslator_wait_return_lateness_seconds" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names = append(names, name+suffix)
			}
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// descName reads the metric name out of a Desc, whose only way of
// telling it is its String.
func descName(d *prometheus.Desc) string {
	s := d.String()
	const key = `fqName: "`
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	return s[:strings.IndexByte(s, '"')]
}
