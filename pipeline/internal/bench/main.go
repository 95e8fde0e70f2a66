// Package bench is pulsebench, the benchmark harness: "pulsetranslator
// bench", or the pulsebench command alone. It measures a translator end
// to end on a real broker
// against the broker's own limit. It publishes N distinct corpus messages
// upstream with confirms, runs "pulsetranslator run" (one or more
// replicas) on them, consumes the normalized exchange, and reports
// throughput, latency p50/p99 and the translator's peak RSS. In the same
// run it measures a bare baseline: a minimal amqp091-go worker that
// consumes the same input and publishes the same output bodies with the
// same persistence and confirms, parks the inputs the translator refuses
// as the translator does, and prints translator / baseline.
//
//	go build -o /tmp/pulsetranslator ./cmd/pulsetranslator
//	go run ./cmd/pulsebench -translator /tmp/pulsetranslator -n 20000 -runs 3
//
// It runs its baseline worker and its log server as processes of its
// own: the same binary, with its command and -serve-baseline or
// -serve-logs.
package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Command is the command of the pulsetranslator binary that runs Main
// (cli dispatches it), and what the worker processes it starts as itself
// are run with.
const Command = "bench"

// options are pulsebench's flags.
type options struct {
	broker, translator, corpus, mix, client string
	// workerBroker is the URL the worker processes connect with; empty
	// for broker's.
	workerBroker string
	// translatorEnv are KEY=VALUE settings of the worker processes'
	// environment, such as GOGC or GOMEMLIMIT.
	translatorEnv                          envList
	n, prefetch, consumers, replicas, runs int
	// publishChannels is the translator's publish_channels.
	publishChannels int
	// baselinePrefetch and baselineChannels shape the bare worker.
	baselinePrefetch, baselineChannels int
	preload, baseline, isolate, warmup bool
	// gate runs the readiness gate: every input's log URL points at a
	// local server of pulsebench's, distinct for each input, and the
	// translator checks it before publishing. gateURL is that server.
	gate    bool
	gateURL string
	// logServerPID is the log server's process, whose CPU each run
	// measures; 0 without one.
	logServerPID int
	cpuProfile   string
	// workerCPUs is where the worker processes run with -isolate.
	workerCPUs string
	// serveBaseline makes this process the bare worker (see runBaseline).
	serveBaseline bool
	// serveLogs makes this process the log server (see logServer).
	serveLogs bool
	// queueType is the type of every queue the benchmark reads from:
	// the translator's (queue.type) and the baseline worker's.
	queueType string
	timeout   time.Duration
	// hangingRate, when above 0, runs the hanging-host benchmark (see
	// benchHanging): steadyRate messages a second for duration, beside
	// hangingRate a second whose log host hangs.
	hangingRate, steadyRate int
	duration                time.Duration
}

// Main runs pulsebench with args (its flags) and returns the exit code.
// Args may start with Command, as the worker processes it starts as
// itself are given it: the pulsebench binary runs "bench" with whatever
// follows.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == Command {
		args = args[1:]
	}
	fs := flag.NewFlagSet("pulsebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.broker, "broker", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL of the broker, or the URLs of a cluster's nodes, comma-separated; the user declares the benchmark's exchanges and queues")
	fs.StringVar(&o.queueType, "queue-type", config.QueueClassic, "classic or quorum: the type of the translator's queues and of the baseline worker's")
	fs.StringVar(&o.workerBroker, "worker-broker", "", "AMQP URL the translator replicas and the baseline worker connect with (default -broker); a user with only the Pulse permissions of -client measures them as they run in production")
	fs.Var(&o.translatorEnv, "worker-env", "KEY=VALUE in the worker processes' environment only, for example GOMEMLIMIT=48MiB (repeatable)")
	fs.StringVar(&o.translator, "translator", "pulsetranslator", "the pulsetranslator binary to run")
	fs.StringVar(&o.corpus, "corpus", "translators/buildbot/testdata/corpus/buildbot", "folder of raw Buildbot messages")
	fs.StringVar(&o.mix, "mix", "*/*", "glob of corpus files (relative to -corpus) to cycle through, e.g. 'mozilla-central/*'")
	fs.StringVar(&o.client, "client", "pulsebench", "Pulse client id of the benchmark's names")
	fs.IntVar(&o.n, "n", 20000, "raw messages per run")
	fs.IntVar(&o.prefetch, "prefetch", config.DefaultPrefetch, "the translator's prefetch of each consumer")
	fs.IntVar(&o.consumers, "consumers", config.DefaultConsumers, "the translator's consumers per process")
	fs.IntVar(&o.publishChannels, "publish-channels", config.DefaultPublishChannels, "the translator's publish channels per process")
	fs.IntVar(&o.baselinePrefetch, "baseline-prefetch", 200, "the bare worker's prefetch of each channel")
	fs.IntVar(&o.baselineChannels, "baseline-channels", 1, "the bare worker's channels (each consumes and publishes), per replica")
	fs.BoolVar(&o.gate, "gate", true, "run the readiness gate: each input's log URL is distinct and answered by a local server, and the translator checks it before publishing (the bare worker does not)")
	fs.StringVar(&o.gateURL, "gate-url", "", "the local log server's URL (pulsebench passes it to the baseline worker)")
	fs.IntVar(&o.replicas, "replicas", 1, "translator processes on the one input queue")
	fs.IntVar(&o.runs, "runs", 3, "runs of each; medians are reported")
	fs.BoolVar(&o.preload, "preload", false, "queue all N messages before starting the consumers (measures a backlog, and RSS under it)")
	fs.BoolVar(&o.baseline, "baseline", true, "measure the bare baseline too")
	fs.BoolVar(&o.warmup, "warmup", true, "run each once before the measured runs, printed but left out of the medians (a broker's first run is its slowest)")
	fs.BoolVar(&o.isolate, "isolate", false, "pin the local broker and pulsebench's publisher and probe to CPU 0, and the translator or baseline worker to the other CPUs, as when the broker has its own machine (needs 2 CPUs and the right to set a process's affinity)")
	fs.BoolVar(&o.serveLogs, "serve-logs", false, "be the local log server until stopped, printing its URL (pulsebench starts it so)")
	fs.BoolVar(&o.serveBaseline, "serve-baseline", false, "be the bare baseline worker on the benchmark's queue until stopped (pulsebench starts it so)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "have each translator replica write a CPU profile to FILE.<run>.<replica>")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit of one run")
	fs.IntVar(&o.hangingRate, "hanging-rate", 0, "run the hanging-host benchmark instead: -steady-rate messages a second whose logs answer at once, for -duration, without and then with this many a second whose log host accepts and never answers; it reports the steady messages' latency")
	fs.IntVar(&o.steadyRate, "steady-rate", 300, "with -hanging-rate: the steady messages a second")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "with -hanging-rate: how long each run publishes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "pulsebench: %v\n", err)
		return 2
	}
	var err error
	switch {
	case o.serveLogs:
		err = serveLogs()
	case o.serveBaseline:
		err = serveBaseline(o)
	case o.hangingRate > 0:
		undoOnSignal(stderr)
		err = benchHanging(o, stdout)
	default:
		undoOnSignal(stderr)
		_, err = bench(o, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pulsebench: %v\n", err)
		return 1
	}
	return 0
}

// envList is a repeatable KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

// Set adds one KEY=VALUE.
func (e *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q: give KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// workerEnv is the environment of the worker processes: the worker
// broker's URL goes in the variable the translator reads (and the
// baseline worker too), never on a command line, then -worker-env's
// settings (GOMAXPROCS, GOGC, GOMEMLIMIT), the same for both, so that a
// runtime setting that helps one helps the other.
func (o options) workerEnv() []string {
	url := o.workerBroker
	if url == "" {
		url = o.broker
	}
	return append([]string{config.EnvConnection + "=" + url}, o.translatorEnv...)
}

// rules are the translator's rule files: with -gate, the readiness gate's
// too.
func (o options) rules() string {
	if o.gate {
		return "builtin:buildbot.yaml, builtin:buildbot-wait.yaml"
	}
	return "builtin:buildbot.yaml"
}

// check refuses counts that cannot make a run.
func (o options) check() error {
	for _, c := range []struct {
		flag  string
		value int
	}{{"-n", o.n}, {"-prefetch", o.prefetch}, {"-consumers", o.consumers}, {"-publish-channels", o.publishChannels}, {"-replicas", o.replicas},
		{"-runs", o.runs}, {"-baseline-prefetch", o.baselinePrefetch}, {"-baseline-channels", o.baselineChannels}} {
		if c.value < 1 {
			return fmt.Errorf("%s %d: must be at least 1", c.flag, c.value)
		}
	}
	if o.timeout <= 0 {
		return fmt.Errorf("-timeout %s: must be positive", o.timeout)
	}
	return nil
}

// names are the benchmark's client id, exchanges and queues.
type names struct {
	client, upstream, output, input, baselineQueue string
	// deadQueue is the translator's; the baseline parks through a dead
	// exchange and queue of its own.
	deadQueue, baselineDeadExchange, baselineDeadQueue string
}

// namesOf gives the benchmark's names for a client id.
func namesOf(client string) names {
	return names{
		client:        client,
		upstream:      "exchange/" + client + "-upstream/build/",
		output:        pulse.ExchangeName(client, "build/normalized"),
		input:         pulse.InputQueue(client, "build"),
		baselineQueue: "queue/" + client + "/baseline",
		deadQueue:     pulse.DeadQueue(client, "build"),

		baselineDeadExchange: "exchange/" + client + "/baseline-dead",
		baselineDeadQueue:    "queue/" + client + "/baseline-dead",
	}
}

// setup is what both a benchmark and its baseline worker work from.
type setup struct {
	nm         names
	configPath string
	stream     *stream
	cleanup    func()
}

// prepare writes the translator's config and computes the stream.
func prepare(o options, stdout io.Writer) (*setup, error) {
	if o.gate && o.gateURL == "" {
		return nil, errors.New("-gate needs the local log server's URL (-gate-url)")
	}
	nm := namesOf(o.client)
	dir, err := os.MkdirTemp("", "pulsebench-")
	if err != nil {
		return nil, err
	}
	su := &setup{nm: nm, configPath: filepath.Join(dir, "config.yaml"), cleanup: func() { os.RemoveAll(dir) }}
	// The connection comes from the workers' environment (workerEnv).
	configText := fmt.Sprintf(`client_id: %s
pipelines:
  - name: build
    translator: buildbot
    bindings: [{exchange: %s, routing_keys: ['#']}]
    outputs: [{exchange: build/normalized}]
    rules: [%s]
    prefetch: %d
    consumers: %d
    queue: {max_length: %d, dead_max_length: %d, type: %s}
    wait: {check: {allow_private: true}}
publish_channels: %d
`, o.client, nm.upstream, o.rules(), o.prefetch, o.consumers, 2*o.n+1000, o.n+1000, o.queueType, o.publishChannels)
	if err := os.WriteFile(su.configPath, []byte(configText), 0o600); err != nil {
		su.cleanup()
		return nil, err
	}
	cfg, err := config.Parse(su.configPath, []byte(configText))
	if err != nil {
		su.cleanup()
		return nil, err
	}
	fmt.Fprintf(stdout, "preparing %d messages from %s/%s ...\n", o.n, o.corpus, o.mix)
	if su.stream, err = newStream(cfg, o.corpus, o.mix, o.n, o.gateURL); err != nil {
		su.cleanup()
		return nil, err
	}
	return su, nil
}

// measured is what a benchmark found: what every run should give, and
// each run's result.
type measured struct {
	// outputs and parked are the stream's outputs and refused inputs.
	outputs, parked int
	base, ours      []result
}

// bench runs the benchmark o describes, printing each run and the
// medians to stdout.
func bench(o options, stdout io.Writer) (measured, error) {
	translatorPath, err := filepath.Abs(o.translator)
	if _, statErr := os.Stat(translatorPath); err != nil || statErr != nil {
		return measured{}, fmt.Errorf("-translator %s: build it first (go build -o /tmp/pulsetranslator ./cmd/pulsetranslator)", o.translator)
	}
	if o.isolate {
		restore, cpus, err := isolate()
		if err != nil {
			return measured{}, fmt.Errorf("-isolate: %w", err)
		}
		forget := interrupted.add(restore)
		defer func() { forget(); restore() }()
		o.workerCPUs = cpus
		cpuWord := "CPU"
		if strings.Contains(cpus, "-") {
			cpuWord = "CPUs"
		}
		fmt.Fprintf(stdout, "isolated: the broker and pulsebench on CPU 0, the translator or baseline worker and the log server on %s %s\n", cpuWord, cpus)
	}
	if o.gate {
		logs, err := startLogServer(o.workerCPUs)
		if err != nil {
			return measured{}, err
		}
		o.gateURL, o.logServerPID = logs.url, logs.proc.cmd.Process.Pid
		defer func() { fmt.Fprintf(stdout, "log checks answered by the local log server: %d\n", logs.stop()) }()
	}
	su, err := prepare(o, stdout)
	if err != nil {
		return measured{}, err
	}
	defer su.cleanup()
	nm, configPath, s := su.nm, su.configPath, su.stream
	conn, err := dialAny(o.broker)
	if err != nil {
		return measured{}, err
	}
	defer conn.Close()
	if err := declare(conn, nm, o.n, o.queueType); err != nil {
		return measured{}, err
	}
	forget := interrupted.add(func() { cleanup(conn, nm) })
	defer func() { forget(); cleanup(conn, nm) }()
	workers := "as -broker"
	if o.workerBroker != "" {
		workers = "as " + config.ParseConnections(o.workerBroker).Redacted()
	}
	fmt.Fprintf(stdout, "%d inputs give %d outputs, and %d are refused and parked; broker %s (%s queues), workers connect %s; translator: %d consumer(s) x prefetch %d, %d publish channel(s), gate %v; baseline: %d channel(s) x prefetch %d; %d replica(s); preload %v\n",
		o.n, s.total, s.parked, config.ParseConnections(o.broker).Redacted(), o.queueType, workers, o.consumers, o.prefetch, o.publishChannels, o.gate, o.baselineChannels, o.baselinePrefetch, o.replicas, o.preload)

	m := measured{outputs: s.total, parked: s.parked}
	// label names run 0 the warm-up, which is printed but not counted.
	label := func(run int) string {
		if run == 0 {
			return "warm-up"
		}
		return fmt.Sprintf("#%d", run)
	}
	// side is one of the two measured, with where its results go.
	type side struct {
		what, name string
		results    *[]result
		run        func() (result, error)
	}
	base := side{"baseline", "baseline", &m.base, func() (result, error) { return runBaseline(conn, o, nm, s) }}
	ours := side{"translator", fmt.Sprintf("translator x%d", o.replicas), &m.ours,
		func() (result, error) { return runTranslator(conn, o, nm, s, translatorPath, configPath) }}
	measure := func(sd side, run int) error {
		r, err := sd.run()
		if err != nil {
			return fmt.Errorf("%s run %s: %w", sd.what, label(run), err)
		}
		r.name = sd.name + " " + label(run)
		if run > 0 {
			*sd.results = append(*sd.results, r)
		}
		printResult(stdout, r)
		return nil
	}
	first := 1
	if o.warmup {
		first = 0
	}
	for run := first; run <= o.runs; run++ {
		order := []side{ours}
		if o.baseline {
			// The baseline goes first in odd runs and second in even ones,
			// so that neither always follows the other.
			order = pairOrder(run, base, ours)
		}
		for _, sd := range order {
			if err := measure(sd, run); err != nil {
				return m, err
			}
		}
	}
	report(stdout, m.base, m.ours)
	for _, r := range append(m.base, m.ours...) {
		if r.parked != s.parked {
			fmt.Fprintf(stdout, "%s parked %d inputs; the stream has %d refused inputs\n", r.name, r.parked, s.parked)
		}
	}
	return m, nil
}

func declare(conn *amqp.Connection, nm names, n int, queueType string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, ex := range []string{nm.upstream, nm.output} {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare %s: %w", ex, err)
		}
	}
	for _, q := range []string{nm.baselineQueue, nm.baselineDeadQueue} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int64(2*n + 1000), "x-queue-type": queueType}); err != nil {
			return fmt.Errorf("declare %s: %w", q, err)
		}
	}
	if err := ch.ExchangeDeclare(nm.baselineDeadExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", nm.baselineDeadExchange, err)
	}
	if err := ch.QueueBind(nm.baselineDeadQueue, "", nm.baselineDeadExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", nm.baselineDeadQueue, err)
	}
	return nil
}

// parkedIn counts the messages in a dead queue, -1 when it cannot.
func parkedIn(conn *amqp.Connection, queue string) int {
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// cleanup deletes the queues and exchanges the benchmark and its
// workers declare.
func cleanup(conn *amqp.Connection, nm names) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	queues := []string{nm.baselineQueue, nm.baselineDeadQueue, nm.input, nm.deadQueue}
	// The translator's wait queues (the benchmark's pipeline keeps the
	// default tiers) outlive it, as they must in production.
	for _, tier := range config.DefaultWaitTiers {
		queues = append(queues, pulse.WaitQueue(nm.client, "build", tier))
	}
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	for _, ex := range []string{nm.upstream, nm.output, nm.baselineDeadExchange, pulse.DeadExchange(nm.client, "build"), pulse.WaitExchange(nm.client, "build"),
		pulse.ParkExchange(nm.client, "build"), pulse.HoldExchange(nm.client, "build")} {
		_ = ch.ExchangeDelete(ex, false, false)
	}
}

// publishAsync publishes the stream on its own channel in the background.
func publishAsync(conn *amqp.Connection, exchange string, s *stream) (*sentTimes, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	st := &sentTimes{done: make(chan struct{})}
	go func() {
		defer close(st.done)
		defer ch.Close()
		times, err := (&publisher{ch: ch, exchange: exchange}).publish(s)
		st.mu.Lock()
		st.times, st.err = times, err
		st.mu.Unlock()
	}()
	return st, nil
}

// runBaseline measures the bare worker, run as a process of its own
// (pulsebench -serve-baseline) like the translator.
func runBaseline(conn *amqp.Connection, o options, nm names, s *stream) (result, error) {
	ch, err := conn.Channel()
	if err != nil {
		return result{}, err
	}
	defer ch.Close()
	purge := func() error {
		for _, q := range []string{nm.baselineQueue, nm.baselineDeadQueue} {
			if _, err := ch.QueuePurge(q, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := purge(); err != nil {
		return result{}, err
	}
	if err := ch.QueueBind(nm.baselineQueue, "#", nm.upstream, false, nil); err != nil {
		return result{}, err
	}
	// Leave nothing between runs: no queue bound upstream, no parked
	// copies (the translator's run does the same with its queues).
	defer func() {
		_ = ch.QueueUnbind(nm.baselineQueue, "#", nm.upstream, nil)
		_ = purge()
	}()
	p, err := newProbe(ch, nm.output)
	if err != nil {
		return result{}, err
	}
	argv, err := baselineArgv(o)
	if err != nil {
		return result{}, err
	}
	start := func() (*workerProcess, error) {
		w, err := startWorker(o.workerCPUs, o.workerEnv(), argv...)
		if err != nil {
			return nil, err
		}
		if err := waitConsumers(conn, nm.baselineQueue, []*workerProcess{w}, o.baselineChannels*o.replicas); err != nil {
			w.stop()
			return nil, err
		}
		return w, nil
	}
	var st *sentTimes
	if o.preload {
		if st, err = publishAsync(conn, nm.upstream, s); err != nil {
			return result{}, err
		}
		st.get()
	}
	worker, err := start()
	if err != nil {
		return result{}, err
	}
	defer worker.stop()
	began, cpu := time.Now(), startCPU(brokerPIDs(o.broker), o.logServerPID)
	workerAt := cpuTime(worker.cmd.Process.Pid)
	if !o.preload {
		if st, err = publishAsync(conn, nm.upstream, s); err != nil {
			return result{}, err
		}
	}
	r, err := p.collect(s, st.get, began, o.timeout, anyStopped(worker))
	r.brokerCPU, r.benchCPU, r.logsCPU = cpu.stop()
	r.workerCPU = cpuTime(worker.cmd.Process.Pid) - workerAt
	r.parked = parkedIn(conn, nm.baselineDeadQueue)
	if worker.exited() {
		return r, fmt.Errorf("the baseline worker exited:\n%s", worker.logs.String())
	}
	if err != nil {
		return r, err
	}
	return r, st.failure()
}

func runTranslator(conn *amqp.Connection, o options, nm names, s *stream, binary, config string) (result, error) {
	ch, err := conn.Channel()
	if err != nil {
		return result{}, err
	}
	defer ch.Close()
	// Fresh input and dead queues: nothing left from an earlier run, and
	// no parked messages piling up from run to run.
	deleteQueues := func() error {
		for _, q := range []string{nm.input, nm.deadQueue} {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := deleteQueues(); err != nil {
		return result{}, err
	}
	// And none left after it: the input queue outlives the translator,
	// bound upstream, and would take a persistent copy of every input of
	// the next baseline run, which the next translator run would pay to
	// delete.
	defer func() { _ = deleteQueues() }()
	starts := 0
	start := func() ([]*workerProcess, error) {
		var procs []*workerProcess
		starts++
		for i := range o.replicas {
			var extra []string
			if o.cpuProfile != "" {
				extra = []string{"--cpuprofile", fmt.Sprintf("%s.%d.%d", o.cpuProfile, starts, i)}
			}
			p, err := startWorker(o.workerCPUs, o.workerEnv(), append([]string{binary, "run", "--config", config, "--log-level", "warn"}, extra...)...)
			if err != nil {
				return procs, err
			}
			procs = append(procs, p)
		}
		return procs, waitConsumers(conn, nm.input, procs, o.replicas*o.consumers)
	}
	stopAll := func(procs []*workerProcess) {
		for _, p := range procs {
			p.stop()
		}
	}
	procs, err := start()
	if err != nil {
		stopAll(procs)
		return result{}, err
	}
	p, err := newProbe(ch, nm.output)
	if err != nil {
		stopAll(procs)
		return result{}, err
	}
	var st *sentTimes
	if o.preload {
		// Queue everything while no translator consumes, then start them.
		stopAll(procs)
		if st, err = publishAsync(conn, nm.upstream, s); err != nil {
			return result{}, err
		}
		st.get()
		if procs, err = start(); err != nil {
			stopAll(procs)
			return result{}, err
		}
	}
	began, cpu := time.Now(), startCPU(brokerPIDs(o.broker), o.logServerPID)
	cpuAt := make([]time.Duration, len(procs))
	for i, proc := range procs {
		cpuAt[i] = cpuTime(proc.cmd.Process.Pid)
	}
	if !o.preload {
		if st, err = publishAsync(conn, nm.upstream, s); err != nil {
			stopAll(procs)
			return result{}, err
		}
	}
	r, err := p.collect(s, st.get, began, o.timeout, anyStopped(procs...))
	r.brokerCPU, r.benchCPU, r.logsCPU = cpu.stop()
	r.parked = parkedIn(conn, nm.deadQueue)
	for i, proc := range procs {
		r.peakRSS = max(r.peakRSS, proc.peakRSS())
		r.workerCPU += cpuTime(proc.cmd.Process.Pid) - cpuAt[i]
	}
	var crashed error
	for i, proc := range procs {
		if proc.exited() {
			crashed = fmt.Errorf("translator replica %d exited during the run:\n%s", i+1, proc.logs.String())
			break
		}
	}
	stopAll(procs)
	if crashed != nil {
		return r, crashed
	}
	if err != nil {
		return r, err
	}
	return r, st.failure()
}

// pairOrder is the order of a run's two measurements: first then second
// in odd runs, the other way round in even ones.
func pairOrder[T any](run int, first, second T) []T {
	if run%2 == 1 {
		return []T{first, second}
	}
	return []T{second, first}
}

// waitConsumers waits until the input queue has want consumers.
func waitConsumers(conn *amqp.Connection, queue string, procs []*workerProcess, want int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("the translator exited:\n%s", p.logs.String())
			}
		}
		ch, err := conn.Channel()
		if err == nil {
			q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			ch.Close()
			if err == nil && q.Consumers >= want {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the translators did not consume within 30s")
}

func printResult(w io.Writer, r result) {
	rss := "-"
	if r.peakRSS > 0 {
		rss = fmt.Sprintf("%.1f MiB", float64(r.peakRSS)/(1<<20))
	}
	fmt.Fprintf(w, "%-18s %8.0f msgs/s  %8.0f outputs/s  p50 %-9s p99 %-9s peak RSS %-9s lost %d  duplicates %d  parked %d  CPU ms/msg: broker %.2f worker %.2f pulsebench %.2f log server %.2f\n",
		r.name, r.rate(), float64(r.outputs)/r.elapsed.Seconds(), r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), rss, r.lost, r.duplicates, r.parked,
		r.perInput(r.brokerCPU), r.perInput(r.workerCPU), r.perInput(r.benchCPU), r.perInput(r.logsCPU))
}

// median is the median of f over rs: the middle value, or the mean of
// the two middle values of an even count.
func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return medianOf(v)
}

// medianOf is the median of v, which it sorts.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// pairedRatio is the median over runs of translator / baseline, each run's
// two measurements taken back to back, and each run's ratio. Unlike the
// ratio of the two medians, it does not move when the machine or the
// broker slows down or speeds up between runs.
func pairedRatio(base, ours []result) (float64, []float64) {
	each := make([]float64, min(len(base), len(ours)))
	for i := range each {
		each[i] = ours[i].rate() / base[i].rate()
	}
	return medianOf(slices.Clone(each)), each
}

func report(w io.Writer, base, ours []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "median of runs\tmsgs/s\tp50 ms\tp99 ms\tpeak RSS MiB\tlost\tduplicates\tparked\tCPU ms/msg: broker\tworker\tpulsebench\tlog server\t")
	row := func(name string, rs []result) {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name,
			median(rs, result.rate),
			median(rs, func(r result) float64 { return float64(r.p50) / 1e6 }),
			median(rs, func(r result) float64 { return float64(r.p99) / 1e6 }),
			median(rs, func(r result) float64 { return float64(r.peakRSS) / (1 << 20) }),
			median(rs, func(r result) float64 { return float64(r.lost) }),
			median(rs, func(r result) float64 { return float64(r.duplicates) }),
			median(rs, func(r result) float64 { return float64(r.parked) }),
			median(rs, func(r result) float64 { return r.perInput(r.brokerCPU) }),
			median(rs, func(r result) float64 { return r.perInput(r.workerCPU) }),
			median(rs, func(r result) float64 { return r.perInput(r.benchCPU) }),
			median(rs, func(r result) float64 { return r.perInput(r.logsCPU) }))
	}
	if len(base) > 0 {
		row("baseline", base)
	}
	row("translator", ours)
	tw.Flush()
	if len(base) > 0 {
		ratio, each := pairedRatio(base, ours)
		runs := make([]string, len(each))
		for i, r := range each {
			runs[i] = fmt.Sprintf("%.2f", r)
		}
		fmt.Fprintf(w, "\ntranslator / baseline: %.2f, the median of the runs' ratios (%s); the ratio of the medians is %.2f\n",
			ratio, strings.Join(runs, ", "), median(ours, result.rate)/median(base, result.rate))
	}
}

// dialAny connects to the first of the comma-separated broker URLs that
// answers.
func dialAny(brokers string) (*amqp.Connection, error) {
	var errs []error
	for _, raw := range config.ParseConnections(brokers) {
		conn, err := amqp.Dial(raw)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("connect to %s: %w", config.RedactURL(raw), err))
	}
	if len(errs) == 0 {
		return nil, errors.New("-broker: no AMQP URL")
	}
	return nil, errors.Join(errs...)
}
