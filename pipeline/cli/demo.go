package cli

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// demoMessages are five raw Buildbot messages of the corpus: a build whose
// log is there, a build whose log appears late, a release repack of nine
// locales, an l10n build without a build URL (refused), and a duplicate
// .finished notice (dropped).
//
//go:embed demo/*.json
var demoMessages embed.FS

// lateLog is the log of the build whose log appears late.
const lateLog = "mozilla-central-win32-bm84-build1-build343.txt.gz"

// demoConfig is the demo's pipeline: the embedded default's, under a
// client id of the run's own, reading an upstream exchange of its own (so
// that nothing it publishes reaches anyone else's queues, and nothing
// anyone else publishes counts as its own), waiting briefly for logs on
// this machine's log server. The words are the client id, the connection
// and the upstream exchange.
const demoConfig = `client_id: %s
connection: %s
declare_upstream: true
pipelines:
  - name: build
    translator: buildbot
    bindings: [{exchange: %s, routing_keys: ['#.log_uploaded', '#.finished']}]
    outputs: [{exchange: build/normalized}]
    rules: [builtin:buildbot.yaml, builtin:buildbot-wait.yaml]
    wait: {tiers: [3s, 6s], deadline: 2m, check: {allow_private: true}}
`

// demoNames are the names of one run of the demo.
type demoNames struct {
	client, upstream string
}

// newDemoNames gives a run of the demo a client id of its own, demo-<hex>,
// and its upstream exchange in that client's namespace.
func newDemoNames() demoNames {
	client := fmt.Sprintf("demo-%08x", rand.Uint32())
	return demoNames{client: client, upstream: "exchange/" + client + "/upstream/build/"}
}

func demoCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	connection := fs.String("connection", config.DefaultConnection, "a local broker whose user may declare queues and exchanges of any client id (the default is the local RabbitMQ as guest)")
	httpAddr := fs.String("http", "127.0.0.1:9464", "serve the live page, /metrics, /healthz and /readyz on this address")
	late := fs.Duration("late", 5*time.Second, "how long one build's log answers 404 before it appears")
	exit := fs.Bool("exit", false, "exit once every message is accounted for, instead of running until interrupted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pulsetranslator demo: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logs, err := serveDemoLogs(*late)
	if err != nil {
		return fail(err)
	}
	defer logs.close()
	names := newDemoNames()
	configText := fmt.Sprintf(demoConfig, names.client, *connection, names.upstream)
	cfg, err := config.Parse("demo config", []byte(configText))
	if err != nil {
		return fail(err)
	}
	configFile, err := writeDemoConfig(configText)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(configFile)
	rn, err := runner.New(cfg, translator.Default, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fail(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := runner.NewMetrics(reg)
	if err != nil {
		return fail(err)
	}
	rn.UseMetrics(metrics)
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fail(fmt.Errorf("--http %s: %w", *httpAddr, err))
	}
	srv := runner.ServeHTTP(ln, runner.HTTPHandler(rn, reg))
	defer srv.Close()

	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(runCtx) }()
	defer func() {
		stopRun()
		<-done
		cleanDemo(*connection, cfg, names)
	}()
	select {
	case <-rn.Running():
	case err := <-done:
		return fail(err)
	case <-time.After(30 * time.Second):
		return fail(fmt.Errorf("no broker answered at %s within 30s; start one with deploy/local/broker.sh", config.RedactURL(*connection)))
	case <-ctx.Done():
		return 130
	}

	output := pulse.ExchangeName(cfg.ClientID, "build/normalized")
	fmt.Fprintf(stdout, "pulsetranslator demo: the whole flow on this machine\n")
	fmt.Fprintf(stdout, "  broker  %s, as the client %s: raw messages in on %s, normalized out on %s\n", config.RedactURL(*connection), names.client, names.upstream, output)
	fmt.Fprintf(stdout, "  logs    %s, a local server the readiness gate checks; one build's log appears only after %s\n", logs.url, *late)
	fmt.Fprintf(stdout, "  live    http://%s/   (open it: queues, outputs and parked messages as they happen)\n\n", ln.Addr())

	conn, err := amqp.Dial(*connection)
	if err != nil {
		return fail(fmt.Errorf("connect to %s: %w", config.RedactURL(*connection), err))
	}
	defer conn.Close()
	outputs, err := demoProbe(conn, output)
	if err != nil {
		return fail(err)
	}
	sent, err := publishDemo(conn, names.upstream, logs.url)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "published %d raw Buildbot messages to %s\n", sent, names.upstream)

	const wantOutputs, wantParked, wantDropped = 11, 1, 1
	got, seenParks, seenWaits, seenDrops := 0, 0, int64(0), int64(0)
	stats := rn.Stats("build")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for got < wantOutputs || seenParks < wantParked || seenDrops < wantDropped {
		select {
		case d := <-outputs:
			got++
			fmt.Fprintf(stdout, "  out      %s  CC %s\n", d.RoutingKey, strings.Join(ccOf(d), " "))
		case <-tick.C:
			if w := stats.Waited.Load(); w > seenWaits {
				seenWaits = w
				fmt.Fprintf(stdout, "  waiting  a build's log is not there yet: it waits in %s/wait/<tier>, in RabbitMQ (%d so far)\n", pulse.InputQueue(names.client, "build"), w)
			}
			if d := stats.Dropped.Load(); d > seenDrops {
				seenDrops = d
				fmt.Fprintf(stdout, "  dropped  a duplicate .finished notice (counted in pulsetranslator_dropped_total)\n")
			}
			for _, p := range rn.Status().Pipelines[0].Parks[seenParks:] {
				seenParks++
				fmt.Fprintf(stdout, "  parked   %s: %s\n", p.Class, p.Reason)
			}
		case <-deadline:
			return fail(errors.New("not every message was accounted for within 2 minutes; see the live page and the log"))
		case <-ctx.Done():
			return 130
		}
	}
	fmt.Fprintf(stdout, "\n%d raw messages gave %d outputs; %d parked in %s, %d dropped; %d log checks.\n",
		sent, got, seenParks, pulse.DeadQueue(names.client, "build"), seenDrops, logs.checks.Load())
	if *exit {
		return 0
	}
	fmt.Fprintf(stdout, "The live page stays up at http://%s/ until Ctrl-C, which deletes the demo's queues and exchanges. Until then, in another terminal:\n", ln.Addr())
	fmt.Fprintf(stdout, "  pulsetranslator dead list --config %s     the parked message, with its reason\n", configFile)
	fmt.Fprintf(stdout, "  pulsetranslator tail --config %s          the normalized messages as they are published\n", configFile)
	<-ctx.Done()
	return 0
}

// demoLogs is the demo's log server: every log is there but one, which
// answers 404 until its time has come.
type demoLogs struct {
	url    string
	srv    *http.Server
	checks atomic.Int64
}

func serveDemoLogs(late time.Duration) (*demoLogs, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &demoLogs{url: "http://" + ln.Addr().String()}
	appears := time.Now().Add(late)
	l.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.checks.Add(1)
		if strings.HasSuffix(r.URL.Path, lateLog) && time.Now().Before(appears) {
			http.NotFound(w, r)
		}
	})}
	go func() { _ = l.srv.Serve(ln) }()
	return l, nil
}

func (l *demoLogs) close() { _ = l.srv.Close() }

// demoProbe consumes what the demo publishes, through a queue of its own.
func demoProbe(conn *amqp.Connection, exchange string) (<-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, err
	}
	if err := ch.QueueBind(q.Name, "#", exchange, false, nil); err != nil {
		return nil, err
	}
	return ch.Consume(q.Name, "", true, true, false, false, nil)
}

// writeDemoConfig writes the demo's config to a file of its own, for the
// commands the demo suggests while it runs.
func writeDemoConfig(text string) (string, error) {
	f, err := os.CreateTemp("", "pulsetranslator-demo-*.yaml")
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// publishDemo publishes the demo's messages to upstream, their log URLs on
// the local log server, with confirms.
func publishDemo(conn *amqp.Connection, upstream, logsURL string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	entries, err := demoMessages.ReadDir("demo")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		body, err := demoMessages.ReadFile(path.Join("demo", e.Name()))
		if err != nil {
			return 0, err
		}
		body = bytes.ReplaceAll(body, []byte("http://archive.mozilla.org/"), []byte(logsURL+"/"))
		key := strings.TrimSuffix(e.Name(), ".json")
		dc, err := ch.PublishWithDeferredConfirm(upstream, key, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body})
		if err != nil {
			return 0, err
		}
		if !dc.Wait() {
			return 0, errors.New("the broker refused a raw message")
		}
	}
	return len(entries), nil
}

func ccOf(d amqp.Delivery) []string {
	var cc []string
	if list, ok := d.Headers["CC"].([]interface{}); ok {
		for _, route := range list {
			cc = append(cc, fmt.Sprint(route))
		}
	}
	return cc
}

// cleanDemo deletes the run's queues and exchanges, as teardown would, and
// its upstream exchange: the next run has names of its own.
func cleanDemo(connection string, cfg *config.Config, names demoNames) {
	conn, err := amqp.Dial(connection)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, it := range teardownItems(cfg, []string{"build"}) {
		_ = it.delete(ch)
	}
	_ = ch.ExchangeDelete(names.upstream, false, false)
}
