// Package runner runs pipelines on RabbitMQ: Watermill's router over an
// in-flight subscriber, with the message path of flow.go for each
// delivery.
//
// A message's path, one step per file:
//
//	flow.go     the path itself, in one function: decode → translate, rules,
//	            validate → readiness gate → encode → publish → ack
//	origin.go   where a delivery came from; a returning waiter's state
//	gate.go     the readiness gate: check artifacts, or hold the message
//	            back in a wait queue
//	publish.go  confirmed publishing, retried with backoff
//	park.go     refused messages to the dead queue, with their reason
//
// runner.go wires them: the connection, the topology, one router handler
// per pipeline.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/connsource"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Runner runs the pipelines of a Config on RabbitMQ.
//
// Its life cycle:
//  1. New compiles everything (rules, schemas, translators) and checks the
//     config; it does no I/O, and any error stops start-up.
//  2. Run connects (waiting for the broker as long as it takes, unless it
//     refuses the credentials or the topology), declares each pipeline's
//     topology, consumes until its context ends, and drains the messages
//     in flight before it returns.
type Runner struct {
	cfg       *config.Config
	log       *slog.Logger
	throttle  *throttle
	amqp      amqp.Config
	pipelines []*pipelineRun
	// metrics, when set by UseMetrics, are kept up to date.
	metrics *Metrics
	// running is closed once every pipeline consumes.
	running chan struct{}
	// shipped are the plugins' schemas and rule files, served at
	// /schemas/.
	shipped *process.Shipped
	// conn is the connection Run runs; pub publishes on it.
	conn *broker.Connection
	pub  *broker.Publisher
}

// pipelineRun is one pipeline: its processor, topology, gate, counters
// and, while running, its subscriber.
type pipelineRun struct {
	cfg      config.PipelineConfig
	proc     *process.Processor
	topology *broker.Topology
	// gate holds the messages that wait: for their artifacts, or for
	// the output exchange to take their outputs.
	gate  *readinessGate
	stats Stats
	sub   *broker.Subscriber
	// queues are read by watchQueues; recent is what the live page shows.
	queues []*watchedQueue
	recent recent
	// waits notes when waiting messages come back (waitwatch.go).
	waits waitWatch
}

// Stats counts what became of a pipeline's messages.
type Stats struct {
	// Received counts messages taken from the input queue (redeliveries too).
	Received atomic.Int64
	// Published counts outputs the broker confirmed.
	Published atomic.Int64
	// Dropped counts outputs (or whole messages) dropped on purpose.
	Dropped atomic.Int64
	// Parked counts messages sent to the dead queue.
	Parked atomic.Int64
	// Waited counts messages sent to a wait queue because their artifacts
	// were missing or their outputs refused (each wait of a message
	// counts).
	Waited atomic.Int64
	// Expired counts messages whose artifacts were still missing at their
	// deadline (parked, or published as unconfirmed).
	Expired atomic.Int64
	// Retried counts publishes tried again after the broker did not take
	// them.
	Retried atomic.Int64
	// Refused counts publishes of outputs that a queue bound to the output
	// exchange refused or did not confirm in time (the messages then wait
	// to publish them again).
	Refused atomic.Int64
	// InFlight is the number of messages being handled now.
	InFlight atomic.Int64
}

// New prepares the pipelines of cfg with translators from reg. logger
// may be nil.
func New(cfg *config.Config, reg *translator.Registry, logger *slog.Logger) (*Runner, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	shipped, err := process.Ship(reg)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, log: logger, throttle: newThrottle(logger, 10*time.Second), running: make(chan struct{}), shipped: shipped}
	var errs []error
	if tlsConfig, err := cfg.BrokerTLS(); err != nil {
		errs = append(errs, err)
	} else {
		r.amqp = broker.AMQPConfig("pulsetranslator "+cfg.ClientID, tlsConfig)
	}
	for _, p := range cfg.Pipelines {
		proc, err := process.NewProcessor(p, reg, shipped)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		run := &pipelineRun{cfg: p, proc: proc, topology: topologyOf(cfg.ClientID, p)}
		run.topology.DeclareUpstream = cfg.DeclareUpstream
		// Every pipeline has its wait queues, whether or not its rules
		// wait for artifacts: a message whose outputs a consumer's queue
		// refuses waits in them too. The hold exchange's retry binding is
		// also the route by which "dead replay" returns parked messages.
		run.gate, err = newReadinessGate(cfg.ClientID, p, proc.Waits())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		run.topology.Wait = run.gate.topology()
		run.topology.OnOlderQueue = r.warnOlderQueue(p.Name)
		run.queues = queuesOf(run)
		r.pipelines = append(r.pipelines, run)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.conn = broker.NewConnection(broker.ConnectionConfig{
		Addresses:       broker.Addresses(cfg.Connection),
		Source:          connectionSource(cfg, logger),
		RecycleInterval: cfg.RecycleInterval,
		AMQP:            r.amqp,
		Setup:           r.declare,
		Logger:          logger,
	})
	r.pub = broker.NewPublisher(r.conn, cfg.PublishChannels)
	for _, p := range r.pipelines {
		p.sub = broker.NewSubscriber(r.conn, broker.SubscriberConfig{
			Queue:    p.topology.InputQueue,
			Prefetch: p.cfg.Prefetch,
			Channels: p.cfg.Consumers,
			Declare:  p.topology.Declare,
			Logger:   logger.With("pipeline", p.cfg.Name),
		})
	}
	return r, nil
}

func topologyOf(client string, p config.PipelineConfig) *broker.Topology {
	t := &broker.Topology{
		InputQueue:    pulse.InputQueue(client, p.Name),
		DeadQueue:     pulse.DeadQueue(client, p.Name),
		DeadExchange:  pulse.DeadExchange(client, p.Name),
		ParkExchange:  pulse.ParkExchange(client, p.Name),
		MaxLength:     p.Queue.MaxLength,
		DeadMaxLength: p.Queue.DeadMaxLength,
		DeadMaxBytes:  p.Queue.DeadMaxBytes,
		QueueType:     p.Queue.Type,
		DeliveryLimit: p.Queue.DeliveryLimit,
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

// UseMetrics makes the runner keep m up to date. Call it before Run.
func (r *Runner) UseMetrics(m *Metrics) { r.metrics = m }

// Running is closed once every pipeline consumes.
func (r *Runner) Running() <-chan struct{} { return r.running }

// Ready reports whether the runner is connected, every pipeline
// consumes, and every input queue answers: what a readiness probe asks.
func (r *Runner) Ready() bool { return r.Unready() == "" }

// Unready says why the runner is not ready, in words an operator can act
// on, or "" when it is.
func (r *Runner) Unready() string {
	if r.conn.Current() == nil {
		if why := r.conn.LastError(); why != "" {
			return "not connected to the broker: " + why
		}
		return "not connected to the broker"
	}
	now := time.Now()
	for _, p := range r.pipelines {
		if !p.sub.Consuming() {
			return "pipeline " + p.cfg.Name + " does not consume its input queue yet"
		}
		if in := p.queues[0]; in.unansweredFor(now) > stuckReading {
			return p.inputUnanswered(in.unansweredFor(now))
		}
	}
	return ""
}

// inputUnanswered says why a pipeline's input queue has not answered for
// d, by its type. A quorum queue without a leader (a majority of its
// nodes down or cut off) answers nothing until a majority is back, while
// the replica's connection to a node of the minority stays up.
func (p *pipelineRun) inputUnanswered(d time.Duration) string {
	name := p.topology.InputQueue
	if p.cfg.Queue.Type == config.QueueQuorum {
		return fmt.Sprintf("the input queue %s has not answered for %s: a quorum queue without a leader, a majority of its nodes down or cut off from this one (rabbitmq-queues quorum_status %q, on a node that is up, shows its members), or a stuck queue (%s)",
			name, d.Round(time.Second), name, broker.UnresponsiveQueueHint)
	}
	return fmt.Sprintf("the input queue %s has not answered for %s: its node may be down or cut off, or the queue stuck (%s)", name, d.Round(time.Second), broker.UnresponsiveQueueHint)
}

// Warnings are what an operator should know of a runner that is ready:
// waiting messages that do not come back.
func (r *Runner) Warnings() []string {
	var out []string
	now := time.Now()
	for _, p := range r.pipelines {
		if why := p.waitersOverdue(now); why != "" {
			out = append(out, why)
		}
	}
	return out
}

// Broker names the node the runner is connected to (without password),
// or "" while it is not.
func (r *Runner) Broker() string {
	if s := r.conn.Current(); s != nil {
		return s.Address.Display
	}
	return ""
}

// Stats returns the counters of the named pipeline, or nil.
func (r *Runner) Stats(name string) *Stats {
	for _, p := range r.pipelines {
		if p.cfg.Name == name {
			return &p.stats
		}
	}
	return nil
}

// Checks returns the artifact-check counters of the named pipeline, or nil
// when its rules wait for no artifact.
func (r *Runner) Checks(name string) *gate.Counts {
	for _, p := range r.pipelines {
		if p.cfg.Name == name && p.gate.checker != nil {
			return p.gate.checker.Counts()
		}
	}
	return nil
}

// Run connects and runs every pipeline until ctx ends. It returns nil
// after a clean shutdown, and an error when the broker refuses the
// credentials or the topology before the first connection is made.
func (r *Runner) Run(ctx context.Context) error {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: r.cfg.PublishTimeout + 5*time.Second}, routerLogger(r.log))
	if err != nil {
		return err
	}
	redeclare := r.redeclarer()
	for _, p := range r.pipelines {
		f := &flow{p: p, pub: r.pub, log: r.log.With("pipeline", p.cfg.Name), throttle: r.throttle, metrics: r.metrics,
			publishTimeout: r.cfg.PublishTimeout, attempts: r.cfg.PublishAttempts, redeclare: redeclare}
		p.gate.use(f, r.conn.QueueMessages)
		h := router.AddNoPublisherHandler(p.cfg.Name, p.topology.InputQueue, p.sub, f.handle)
		h.AddMiddleware(broker.Settle, f.parkRefused, middleware.Recoverer)
	}

	connCtx, stopConn := context.WithCancel(context.Background())
	defer stopConn()
	connDone := make(chan error, 1)
	go func() { connDone <- r.conn.Run(connCtx) }()
	routerCtx, stopRouter := context.WithCancel(ctx)
	defer stopRouter()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(routerCtx) }()
	go func() {
		// The router stops when closed, not when its context ends.
		<-routerCtx.Done()
		_ = router.Close()
	}()
	go r.throttle.run(routerCtx)
	go r.announceRunning(routerCtx)
	go r.watchQueues(routerCtx)
	go r.sendCanaries(routerCtx)

	select {
	case err := <-connDone:
		// Refused for good before the first connection.
		stopRouter()
		<-routerDone
		return err
	case err := <-routerDone:
		stopConn()
		<-connDone
		r.throttle.flush(true)
		return err
	}
}

// announceRunning closes running once every pipeline consumes.
func (r *Runner) announceRunning(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.Ready() {
			close(r.running)
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// declare declares every pipeline's topology on a new connection.
func (r *Runner) declare(conn *amqp.Connection) error {
	for _, p := range r.pipelines {
		if err := p.topology.Declare(conn); err != nil {
			return fmt.Errorf("pipeline %s: %w", p.cfg.Name, err)
		}
	}
	return nil
}

// warnOlderQueue returns what says (throttled, for each queue) that a
// queue of pipeline was declared by an earlier version with other
// arguments, which RabbitMQ cannot change in place, what it lacks, and
// how to declare it anew.
func (r *Runner) warnOlderQueue(pipeline string) func(queue, what string) {
	return func(queue, what string) {
		r.throttle.log(slog.LevelWarn, "older queue "+queue,
			"this queue was declared by an earlier version and is used as it is: "+what+". To declare it anew: stop every replica, wait until it is empty (for a wait queue, its tier; for the dead queue, take what it holds with pulsetranslator dead list and replay), delete it (rabbitmqctl delete_queue), and start again",
			"pipeline", pipeline, "queue", queue)
	}
}

// redeclarer returns what a flow calls when a publish found something
// of the topology missing: it declares every pipeline's topology again on
// the current connection, at most once at a time.
func (r *Runner) redeclarer() func(ctx context.Context) error {
	var busy atomic.Bool
	return func(ctx context.Context) error {
		if !busy.CompareAndSwap(false, true) {
			return nil
		}
		defer busy.Store(false)
		s, err := r.conn.Session(ctx)
		if err != nil {
			return err
		}
		return r.declare(s.Conn)
	}
}

// Dial connects once to the broker of cfg, as the connection the broker
// lists as name, for the commands that inspect or publish without
// running the pipelines.
func Dial(cfg *config.Config, name string) (*amqp.Connection, error) {
	tlsConfig, err := cfg.BrokerTLS()
	if err != nil {
		return nil, err
	}
	addrs := broker.Addresses(cfg.Connection)
	if src := connectionSource(cfg, nil); src != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		creds, err := src.Get(ctx)
		cancel()
		if err != nil {
			return nil, err
		}
		addrs = creds.Addresses
	}
	return broker.Dial(addrs, broker.AMQPConfig(name+" "+cfg.ClientID, tlsConfig))
}

// connectionSource is where the connection string of cfg is read at every
// connect, or nil when it is fixed.
func connectionSource(cfg *config.Config, logger *slog.Logger) broker.Source {
	switch {
	case len(cfg.ConnectionCommand) > 0:
		return &connsource.Command{Argv: cfg.ConnectionCommand, Logger: logger}
	case cfg.ConnectionFile != "":
		return &connsource.File{Path: cfg.ConnectionFile}
	}
	return nil
}
