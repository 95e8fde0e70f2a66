package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/pulsetranslator/pulsetranslator/pipeline/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/schemas"
)

// Headers a parked message carries, besides Watermill's reason_poisoned.
const (
	// HeaderClass is the refusal class, such as "malformed_json".
	HeaderClass = "x-pulsetranslator-class"
	// HeaderReason is the refusal reason.
	HeaderReason = "x-pulsetranslator-reason"
	// HeaderPipeline names the pipeline that parked it.
	HeaderPipeline = "x-pulsetranslator-pipeline"
)

// Runner runs the pipelines of a Config on RabbitMQ.
//
// Its life cycle:
//  1. NewRunner compiles everything (rules, schemas, translators) and
//     checks the config; it does no I/O, and any error stops start-up.
//  2. Run connects, declares each pipeline's topology, consumes until its
//     context ends, and drains in-flight messages before it returns.
type Runner struct {
	cfg       *Config
	logger    watermill.LoggerAdapter
	pipelines []*pipelineRun
	running   chan struct{}
	// tls is the TLS config of amqps:// connections.
	tls *tls.Config
	// metrics, when set by UseMetrics, are kept up to date.
	metrics *Metrics
	// exchangeOwner names the pipeline of each exchange the runner
	// publishes to; outputExchange marks the output exchanges.
	exchangeOwner  map[string]string
	outputExchange map[string]bool
	// conn is the connection while Run runs.
	conn atomic.Pointer[wamqp.ConnectionWrapper]
}

// UseMetrics makes the runner keep m up to date. Call it before Run.
func (r *Runner) UseMetrics(m *Metrics) { r.metrics = m }

// Ready reports whether the runner is connected and every pipeline
// consumes: what a readiness probe asks.
func (r *Runner) Ready() bool {
	select {
	case <-r.running:
	default:
		return false
	}
	conn := r.conn.Load()
	return conn != nil && conn.IsConnected()
}

// pipelineRun is one pipeline's processor, topology, gate and counters.
type pipelineRun struct {
	cfg      PipelineConfig
	proc     *Processor
	topology *broker.Topology
	// gate is nil when the pipeline's rules wait for nothing.
	gate         *readinessGate
	waitExchange string
	stats        Stats
}

// Stats counts what became of a pipeline's messages.
type Stats struct {
	// Received counts messages taken from the input queue (redeliveries too).
	Received atomic.Int64
	// Published counts outputs handed to the confirm publisher; when the
	// broker does not confirm them the input returns to its queue, and its
	// outputs count again when it is redelivered.
	Published atomic.Int64
	// Dropped counts outputs (or whole messages) dropped on purpose.
	Dropped atomic.Int64
	// Parked counts messages sent to the dead queue.
	Parked atomic.Int64
	// Waited counts messages sent to a wait queue because their artifacts
	// were missing (each wait of a message counts).
	Waited atomic.Int64
	// Expired counts messages whose artifacts were still missing at their
	// deadline (parked, or published as unconfirmed).
	Expired atomic.Int64
}

// NewRunner prepares the pipelines of cfg with translators from reg.
func NewRunner(cfg *Config, reg *translator.Registry, logger watermill.LoggerAdapter) (*Runner, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	sch, err := schemas.Builtin()
	if err != nil {
		return nil, fmt.Errorf("embedded schemas: %w", err)
	}
	r := &Runner{cfg: cfg, logger: logger, running: make(chan struct{}), exchangeOwner: map[string]string{}, outputExchange: map[string]bool{}}
	var errs []error
	if r.tls, err = cfg.clientTLS(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range cfg.Pipelines {
		proc, err := NewProcessor(p, reg, sch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		run := &pipelineRun{cfg: p, proc: proc, topology: topologyOf(cfg.ClientID, p), waitExchange: WaitExchange(cfg.ClientID, p.Name)}
		run.topology.DeclareUpstream = cfg.DeclareUpstream
		for _, o := range p.Outputs {
			r.exchangeOwner[o.Exchange] = p.Name
			r.outputExchange[o.Exchange] = true
		}
		r.exchangeOwner[run.waitExchange] = p.Name
		r.exchangeOwner[DeadExchange(cfg.ClientID, p.Name)] = p.Name
		// The wait exchange and its retry binding always exist: they are
		// also the route by which "dead replay" returns parked messages.
		run.topology.Wait = &broker.WaitTopology{Exchange: run.waitExchange, RetryKey: RetryKey, MaxLength: p.Wait.MaxLength}
		if proc.Waits() {
			run.gate = newReadinessGate(cfg.ClientID, p, &run.stats, logger)
			run.topology.Wait = run.gate.topology(cfg.ClientID)
		}
		r.pipelines = append(r.pipelines, run)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func topologyOf(client string, p PipelineConfig) *broker.Topology {
	t := &broker.Topology{
		InputQueue:    InputQueue(client, p.Name),
		DeadQueue:     DeadQueue(client, p.Name),
		DeadExchange:  DeadExchange(client, p.Name),
		MaxLength:     p.Queue.MaxLength,
		DeadMaxLength: p.Queue.DeadMaxLength,
		QueueType:     p.Queue.Type,
	}
	for _, b := range p.Bindings {
		for _, key := range b.RoutingKeys {
			t.Bindings = append(t.Bindings, broker.Binding{Exchange: b.Exchange, RoutingKey: key})
		}
	}
	for _, o := range p.Outputs {
		t.OutputExchanges = append(t.OutputExchanges, o.Exchange)
	}
	return t
}

// Running is closed once every pipeline consumes.
func (r *Runner) Running() <-chan struct{} { return r.running }

// Stats returns the counters of the named pipeline, or nil.
func (r *Runner) Stats(pipeline string) *Stats {
	for _, p := range r.pipelines {
		if p.cfg.Name == pipeline {
			return &p.stats
		}
	}
	return nil
}

// Checks returns the artifact-check counters of the named pipeline, or nil
// when it has no readiness gate.
func (r *Runner) Checks(pipeline string) *gate.Counts {
	for _, p := range r.pipelines {
		if p.cfg.Name == pipeline && p.gate != nil {
			return p.gate.checker.Counts()
		}
	}
	return nil
}

// Run connects and runs every pipeline until ctx ends or the broker
// refuses the topology. It returns nil after a clean shutdown.
func (r *Runner) Run(ctx context.Context) error {
	conn, err := wamqp.NewConnection(r.connectionConfig(), r.logger)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", RedactURL(r.cfg.Connection), explainTLS(err))
	}
	defer conn.Close()
	r.conn.Store(conn)
	defer r.conn.Store(nil)
	pub := broker.NewPublisher(conn, r.cfg.PublishTimeout, r.logger)
	pub.Observe = r.observePublish
	defer pub.Close()

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: r.cfg.PublishTimeout}, r.logger)
	if err != nil {
		return err
	}
	for _, p := range r.pipelines {
		if err := r.addPipeline(router, conn, pub, p); err != nil {
			return err
		}
	}
	go func() {
		select {
		case <-router.Running():
			close(r.running)
		case <-ctx.Done():
		}
	}()
	if err := router.Run(ctx); err != nil {
		return err
	}
	return nil
}

// connectionConfig is the watermill-amqp connection config: heartbeats, a
// connection name, TLS with SNI for amqps, and reconnection with backoff.
func (r *Runner) connectionConfig() wamqp.ConnectionConfig {
	return wamqp.ConnectionConfig{
		AmqpURI:    r.cfg.Connection,
		AmqpConfig: r.cfg.amqpConfig("pulsetranslator", r.tls),
		Reconnect:  wamqp.DefaultReconnectConfig(),
	}
}

// addPipeline adds one handler per consumer of a pipeline to the router.
func (r *Runner) addPipeline(router *message.Router, conn *wamqp.ConnectionWrapper, pub *broker.Publisher, p *pipelineRun) error {
	sub, err := wamqp.NewSubscriberWithConnection(wamqp.Config{
		Marshaler: broker.Marshaler{},
		Exchange:  wamqp.ExchangeConfig{GenerateName: func(string) string { return "" }},
		Queue:     wamqp.QueueConfig{GenerateName: wamqp.GenerateQueueNameTopicName, Durable: true},
		Consume: wamqp.ConsumeConfig{
			Qos:      wamqp.QosConfig{PrefetchCount: p.cfg.Prefetch},
			Consumer: "",
		},
		TopologyBuilder: p.topology,
	}, r.logger, conn)
	if err != nil {
		return err
	}
	poison, err := middleware.PoisonQueueWithFilter(pub, p.topology.DeadExchange, func(err error) bool { return !isTransient(err) })
	if err != nil {
		return err
	}
	h := &handler{pipeline: p, logger: r.logger, pub: pub, metrics: r.metrics}
	if p.gate != nil {
		p.gate.metrics = r.metrics
	}
	for i := range p.cfg.Consumers {
		name := fmt.Sprintf("%s-%d", p.cfg.Name, i)
		hd := router.AddHandler(name, p.topology.InputQueue, sub, p.cfg.Outputs[0].Exchange, pub, h.handle)
		hd.AddMiddleware(poison, h.classify, middleware.Recoverer)
	}
	return nil
}

// handler is the message handler of one pipeline.
type handler struct {
	pipeline *pipelineRun
	logger   watermill.LoggerAdapter
	// pub publishes waiting messages to the wait exchange.
	pub *broker.Publisher
	// metrics may be nil.
	metrics *Metrics
}

// transientError is a failure after which the message goes back to its
// queue, to be tried again, instead of being parked: the broker did not
// take a publish because it was unreachable, not because it refused it.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func isTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// handle decodes, processes and turns the outputs into messages for the
// router to publish; the router acks the input only after the publisher
// has every confirm. A message whose artifacts are missing becomes one
// message to a wait queue instead. A returned error parks the message (see
// classify).
func (h *handler) handle(msg *message.Message) ([]*message.Message, error) {
	p := h.pipeline
	p.stats.Received.Add(1)
	if h.metrics != nil {
		h.metrics.Consumed.WithLabelValues(p.cfg.Name).Inc()
	}
	now := time.Now()
	state := restoreSource(msg, p.waitExchange, now)
	if err := CheckContentType(msg.Metadata.Get(broker.MetaContentType)); err != nil {
		return nil, err
	}
	in, outcome, err := p.proc.ProcessBody(msg.Metadata.Get(broker.MetaExchange), msg.Metadata.Get(broker.MetaRoutingKey), msg.Payload, now)
	if err != nil {
		return nil, err
	}
	for _, d := range outcome.Dropped {
		p.stats.Dropped.Add(1)
		if h.metrics != nil {
			h.metrics.Dropped.WithLabelValues(p.cfg.Name, d.Class).Inc()
		}
		h.logger.Debug("dropped", watermill.LogFields{"pipeline": p.cfg.Name, "routing_key": in.RoutingKey, "reason": d.Reason, "rule": d.Rule})
	}
	if urls := waitURLs(outcome.Published); len(urls) > 0 && p.gate != nil {
		wait, unconfirmed, err := p.gate.admit(msg.Context(), msg, in, urls, state, now)
		if err != nil {
			return nil, err
		}
		if wait != nil {
			return nil, h.hold(wait)
		}
		markUnconfirmed(outcome.Published, unconfirmed)
	}
	outs := make([]*message.Message, 0, len(outcome.Published))
	for _, routed := range outcome.Published {
		body, err := Body(routed, now)
		if err != nil {
			return nil, translator.Refuse(ClassInternal, "encode output %s: %v", routed.RoutingKey, err)
		}
		out := message.NewMessage(routed.ID, body)
		out.Metadata.Set(broker.MetaPublishExchange, routed.Output.Exchange)
		out.Metadata.Set(broker.MetaPublishRoutingKey, routed.RoutingKey)
		if len(routed.CC) > 0 {
			out.Metadata.Set(broker.MetaPublishCC, jsonStrings(routed.CC))
		}
		outs = append(outs, out)
	}
	p.stats.Published.Add(int64(len(outs)))
	return outs, nil
}

// hold publishes a waiting message to its wait queue and returns once the
// broker confirms it; the router then acks the input. A wait queue at its
// max_length refuses new messages (reject-publish): the message is parked
// with class wait_queue_full rather than dropped or retried in a loop.
func (h *handler) hold(wait *message.Message) error {
	err := h.pub.Publish(h.pipeline.waitExchange, wait)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, broker.ErrNacked):
		return translator.Refuse(ClassWaitQueueFull, "the wait queue of tier %s refused the message: it holds its max_length of %d messages (raise wait.max_length, or find why artifacts do not appear)",
			wait.Metadata.Get(broker.MetaPublishRoutingKey), h.pipeline.cfg.Wait.MaxLength)
	}
	return &transientError{fmt.Errorf("publish to the wait queue: %w", err)}
}

// classify sits between the poison-queue middleware and the handler: it
// writes the class and reason of a failure into the message's metadata, so
// that the parked copy carries them as headers, and counts it.
func (h *handler) classify(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		outs, err := next(msg)
		if err == nil || isTransient(err) {
			return outs, err
		}
		class, reason := ClassInternal, err.Error()
		var refusal *translator.Refusal
		var panicked middleware.RecoveredPanicError
		switch {
		case errors.As(err, &refusal):
			class, reason = refusal.Class, refusal.Reason
		case errors.As(err, &panicked):
			class, reason = ClassPanic, fmt.Sprintf("the handler panicked: %v", panicked.V)
		}
		msg.Metadata.Set(HeaderClass, class)
		msg.Metadata.Set(HeaderReason, reason)
		msg.Metadata.Set(HeaderPipeline, h.pipeline.cfg.Name)
		h.pipeline.stats.Parked.Add(1)
		if h.metrics != nil {
			h.metrics.Parked.WithLabelValues(h.pipeline.cfg.Name, class).Inc()
		}
		h.logger.Info("parked in the dead queue", watermill.LogFields{
			"pipeline": h.pipeline.cfg.Name, "routing_key": msg.Metadata.Get(broker.MetaRoutingKey), "class": class, "reason": reason})
		return nil, err
	}
}
