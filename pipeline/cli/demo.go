package cli

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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

// demoConfig is the demo's pipeline: the embedded default's, under the
// client id "demo", waiting briefly for logs on this machine's log server.
const demoConfig = `client_id: demo
connection: %s
declare_upstream: true
pipelines:
  - name: build
    translator: buildbot
    bindings: [{exchange: exchange/build/, routing_keys: ['#.log_uploaded', '#.finished']}]
    outputs: [{exchange: build/normalized}]
    rules: [builtin:buildbot.yaml, builtin:buildbot-wait.yaml]
    wait: {tiers: [3s, 6s], deadline: 2m, check: {allow_private: true}}
`

func demoCommand(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	connection := fs.String("connection", config.DefaultConnection, "a local broker whose user may declare exchange/build/ (the default is the local RabbitMQ as guest)")
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
	cfg, err := config.Parse("demo config", []byte(fmt.Sprintf(demoConfig, *connection)))
	if err != nil {
		return fail(err)
	}
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
		cleanDemo(*connection)
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
	fmt.Fprintf(stdout, "  broker  %s: raw messages in on exchange/build/, normalized out on %s\n", config.RedactURL(*connection), output)
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
	sent, err := publishDemo(conn, logs.url)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "published %d raw Buildbot messages to exchange/build/\n", sent)

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
				fmt.Fprintf(stdout, "  waiting  a build's log is not there yet: it waits in queue/demo/build/wait/<tier>, in RabbitMQ (%d so far)\n", w)
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
	fmt.Fprintf(stdout, "\n%d raw messages gave %d outputs; %d parked in queue/demo/build/dead (see: pulsetranslator dead list, with the demo's config), %d dropped; %d log checks.\n",
		sent, got, seenParks, seenDrops, logs.checks.Load())
	if *exit {
		return 0
	}
	fmt.Fprintf(stdout, "The live page stays up at http://%s/ until Ctrl-C.\n", ln.Addr())
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

// publishDemo publishes the demo's messages upstream, their log URLs on
// the local log server, with confirms.
func publishDemo(conn *amqp.Connection, logsURL string) (int, error) {
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
		dc, err := ch.PublishWithDeferredConfirm("exchange/build/", key, false, false, amqp.Publishing{
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

// cleanDemo deletes the demo's queues and exchanges, so that the next
// demo starts afresh (exchange/build/ stays: others may use it).
func cleanDemo(connection string) {
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
	for _, q := range []string{"queue/demo/build", "queue/demo/build/dead", "queue/demo/build/wait/3s", "queue/demo/build/wait/6s"} {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	for _, ex := range []string{"exchange/demo/build/normalized", "exchange/demo/build/dead", "exchange/demo/build/wait", "queue/demo/build/park", "queue/demo/build/hold"} {
		_ = ch.ExchangeDelete(ex, false, false)
	}
}
