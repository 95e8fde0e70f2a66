package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	_ "github.com/pulsetranslator/pulsetranslator/translators/buildbot"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The integration tests talk to a real RabbitMQ: PULSE_TEST_CONNECTION, or
// the local broker as guest. In CI (CI=true) a missing broker fails them.

func adminURL() string { return brokertest.AdminURL() }

// brokerOrSkip connects as the admin user, failing in CI and skipping
// elsewhere when there is no broker.
func brokerOrSkip(t testing.TB) *amqp.Connection { return brokertest.Connect(t) }

// world is one test's private names on the broker.
type world struct {
	t        testing.TB
	admin    *amqp.Channel
	client   string
	upstream string
	// tiers are the wait tiers whose queues the test's pipeline declares.
	tiers []time.Duration
	// user is the connection string of the world's Pulse user, once made.
	user string
	// maxLength and deadMaxLength cap the input and dead queues. Default 1000.
	maxLength, deadMaxLength int
	// quorumProbe makes durableProbe declare a quorum queue.
	quorumProbe bool
	// nodes are the admin URLs of the broker's nodes: the local broker,
	// or the nodes of a test's cluster, tried in turn.
	nodes []string
	// rescues counts the broker restarts of rescueStuckQueue.
	rescues int
	// own is the node of the test's own the world lives on (see
	// newWorldOnOwnNode), or nil on the shared local broker. Only on a
	// node of its own may a test break the broker (close every
	// connection, restart it, raise an alarm): others use the shared one.
	own *cluster
}

// dial connects as the admin to the first of the world's nodes that
// answers.
func (w *world) dial() (*amqp.Connection, error) {
	if len(w.nodes) == 0 {
		return amqp.Dial(adminURL())
	}
	return dialFirst(w.nodes)
}

// dialFirst connects to the first of the URLs that answers.
func dialFirst(urls []string) (*amqp.Connection, error) {
	var err error
	for _, u := range urls {
		var conn *amqp.Connection
		if conn, err = amqp.Dial(u); err == nil {
			return conn, nil
		}
	}
	return nil, err
}

func newWorld(t testing.TB, conn *amqp.Connection) *world {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, admin: ch, maxLength: 1000, deadMaxLength: 1000, client: fmt.Sprintf("pttest-%d", time.Now().UnixNano()%1e10)}
	w.upstream = "exchange/" + w.client + "-upstream/build/"
	if err := ch.ExchangeDeclare(w.upstream, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A broker whose queue does not answer would hold the delete, and
		// the whole test binary, forever: give up after a minute.
		_, err := broker.Within(time.Minute, func() (struct{}, error) { return struct{}{}, w.deleteTopology() })
		switch {
		case errors.Is(err, broker.ErrNoAnswer):
			t.Errorf("cleanup: the broker did not delete the test's queues and exchanges within a minute (a queue that does not answer; rabbitmqctl list_unresponsive_queues names it)")
		case err != nil:
			t.Errorf("cleanup: %v", err)
		}
	})
	return w
}

// deleteTopology deletes the world's queues and exchanges, on a fresh
// connection: the test may have had the broker close its own.
func (w *world) deleteTopology() error {
	conn, err := w.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	queues := []string{pulse.InputQueue(w.client, "build"), pulse.DeadQueue(w.client, "build")}
	// Every pipeline has wait queues: the default tiers' when its config
	// names none.
	for _, tier := range append(slices.Clone(config.DefaultWaitTiers), w.tiers...) {
		queues = append(queues, pulse.WaitQueue(w.client, "build", tier))
	}
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	for _, ex := range []string{w.upstream, pulse.ExchangeName(w.client, "build/normalized"), pulse.DeadExchange(w.client, "build"), pulse.WaitExchange(w.client, "build"),
		pulse.ParkExchange(w.client, "build"), pulse.HoldExchange(w.client, "build")} {
		_ = ch.ExchangeDelete(ex, false, false)
	}
	return nil
}

// config is a one-pipeline config on the world's names.
func (w *world) config(connection string) *config.Config {
	w.t.Helper()
	return w.parse(w.configText(connection, "[builtin:buildbot.yaml]", ""))
}

// configText is the text of a one-pipeline config with the given rule
// files and extra pipeline fields (indented by four spaces).
func (w *world) configText(connection, rules, extra string) string {
	return fmt.Sprintf(`
client_id: %s
connection: %s
publish_timeout: 10s
pipelines:
  - name: build
    translator: buildbot
    bindings:
      - exchange: %s
        routing_keys: ['#.log_uploaded', '#.finished']
    outputs:
      - exchange: build/normalized
    rules: %s
    consumers: 2
    queue: {max_length: %d, dead_max_length: %d}
%s`, w.client, connection, w.upstream, rules, w.maxLength, w.deadMaxLength, extra)
}

func (w *world) parse(text string) *config.Config {
	w.t.Helper()
	cfg, err := config.Parse("test config", []byte(text))
	if err != nil {
		w.t.Fatal(err)
	}
	return cfg
}

// start runs cfg with the registered translators until the test ends.
func start(t testing.TB, cfg *config.Config) *runner.Runner {
	t.Helper()
	return startWith(t, cfg, translator.Default)
}

// startWith runs cfg with the translators of reg until the test ends.
func startWith(t testing.TB, cfg *config.Config, reg *translator.Registry) *runner.Runner {
	t.Helper()
	rn, err := runner.New(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runWith(t, rn)
	return rn
}

// runWith runs the runner until the test ends, once it consumes.
func runWith(t testing.TB, rn *runner.Runner) {
	t.Helper()
	t.Cleanup(runUntilStopped(t, rn))
}

// runUntilStopped runs the runner and returns once it consumes; stop
// stops it and checks it ended well.
func runUntilStopped(t testing.TB, rn *runner.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()
	stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancel")
		}
	}
	select {
	case <-rn.Running():
	case err := <-done:
		t.Fatalf("Run stopped at start-up: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("the runner did not start within 20s")
	}
	return stop
}

// probe declares a queue bound to exchange with keys and returns its
// deliveries.
func (w *world) probe(exchange string, keys ...string) <-chan amqp.Delivery {
	w.t.Helper()
	q, err := w.admin.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, k := range keys {
		if err := w.admin.QueueBind(q.Name, k, exchange, false, nil); err != nil {
			w.t.Fatal(err)
		}
	}
	deliveries, err := w.admin.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return deliveries
}

// publishRaw publishes body upstream and waits for the broker's confirm.
func (w *world) publishRaw(routingKey string, body []byte) {
	w.t.Helper()
	dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, routingKey, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
		// Pulse publishers CC as an AMQP array; the consumer must not choke on it.
		Headers: amqp.Table{"CC": []interface{}{"route.something"}},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if !dc.Wait() {
		w.t.Fatal("upstream publish nacked")
	}
}

func corpusFile(t testing.TB, rel string) ([]byte, string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot", rel))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Meta struct {
			RoutingKey string `json:"routing_key"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return body, m.Meta.RoutingKey
}

func receive(t testing.TB, deliveries <-chan amqp.Delivery, what string) amqp.Delivery {
	t.Helper()
	select {
	case d := <-deliveries:
		return d
	case <-time.After(15 * time.Second):
		t.Fatalf("nothing arrived on %s within 15s", what)
	}
	return amqp.Delivery{}
}

// flow publishes good and bad raw messages upstream and checks what
// arrives on the output exchange, on a CC-only queue and in the dead queue.
func flow(t *testing.T, w *world, rn *runner.Runner) {
	output := pulse.ExchangeName(w.client, "build/normalized")
	main := w.probe(output, "build.#")
	const revision = "cd5fab20f6bd128847ef8131c9aeed63cde019fc"
	ccOnly := w.probe(output, "route.revision."+revision)
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-win32.343.log_uploaded")
	w.publishRaw(key, body)

	d := receive(t, main, "the output exchange")
	if d.RoutingKey != "build.mozilla-central.win32.opt.mozilla-central-win32" {
		t.Errorf("routing key %q", d.RoutingKey)
	}
	if d.ContentType != "application/json" || d.DeliveryMode != amqp.Persistent || d.MessageId == "" {
		t.Errorf("content type %q, delivery mode %d, message id %q; want application/json, persistent, an id", d.ContentType, d.DeliveryMode, d.MessageId)
	}
	cc, _ := d.Headers["CC"].([]interface{})
	wantCC := []interface{}{"route.tree.mozilla-central", "route.revision." + revision, "route.platform.win32"}
	if fmt.Sprint(cc) != fmt.Sprint(wantCC) {
		t.Errorf("CC header %#v, want %v", d.Headers["CC"], wantCC)
	}
	var env struct {
		Payload map[string]any `json:"payload"`
		Meta    map[string]any `json:"_meta"`
	}
	if err := json.Unmarshal(d.Body, &env); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if env.Payload["tree"] != "mozilla-central" || env.Payload["revision"] != revision {
		t.Errorf("payload %v", env.Payload)
	}
	if env.Meta["exchange"] != output || env.Meta["routing_key"] != d.RoutingKey || env.Meta["serializer"] != "json" || env.Meta["sent"] == nil {
		t.Errorf("_meta %v", env.Meta)
	}
	copyByCC := receive(t, ccOnly, "a queue bound only to the CC key")
	if copyByCC.MessageId != d.MessageId || copyByCC.RoutingKey != d.RoutingKey {
		t.Errorf("CC copy: id %q key %q, want %q %q", copyByCC.MessageId, copyByCC.RoutingKey, d.MessageId, d.RoutingKey)
	}

	// A malformed message is parked with its reason; the next good one flows.
	w.publishRaw("build.mozilla-central-linux64.7.log_uploaded", []byte(`{"payload": {"build": `))
	parked := receive(t, dead, "the dead queue")
	if parked.Headers[pulse.HeaderClass] != pulse.ClassMalformed || !strings.Contains(fmt.Sprint(parked.Headers[pulse.HeaderReason]), "JSON") {
		t.Errorf("parked headers %v", parked.Headers)
	}
	if parked.RoutingKey != "build.mozilla-central-linux64.7.log_uploaded" || string(parked.Body) != `{"payload": {"build": ` {
		t.Errorf("parked copy: key %q body %q; want the original", parked.RoutingKey, parked.Body)
	}

	body2, key2 := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key2, body2)
	if d2 := receive(t, main, "the output exchange after a bad message"); d2.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
		t.Errorf("after the bad message: routing key %q", d2.RoutingKey)
	}

	// The same input yields the same message id, so consumers can de-duplicate.
	w.publishRaw(key, body)
	if again := receive(t, main, "the output exchange (repeat)"); again.MessageId != d.MessageId {
		t.Errorf("repeat has id %q, first had %q", again.MessageId, d.MessageId)
	}
	_ = receive(t, ccOnly, "the CC queue (repeat)")

	// A consumer can receive an output before the translator has its
	// confirm and counts it: wait for the counts, then check them.
	stats := rn.Stats("build")
	for deadline := time.Now().Add(10 * time.Second); (stats.Parked.Load() < 1 || stats.Published.Load() < 3) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if stats.Parked.Load() != 1 || stats.Published.Load() != 3 {
		t.Errorf("stats: parked %d published %d, want 1 and 3", stats.Parked.Load(), stats.Published.Load())
	}
}

// TestEndToEnd runs the default-style buildbot pipeline on the broker as
// a user with exactly the Pulse permissions of its client id, as every
// integration test does.
func TestEndToEnd(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	rn := start(t, w.config(w.pulseUser()))
	flow(t, w, rn)
}

// TestPulsePermissions checks the Pulse user the tests run as really is
// restricted: it may not declare outside its namespace, nor touch a second
// client's queues and exchanges, while that client's own pipeline runs.
func TestPulsePermissions(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	other := newWorld(t, conn)
	start(t, other.config(other.pulseUser()))
	rn := start(t, w.config(w.pulseUser()))

	userConn, err := amqp.Dial(w.pulseUser())
	if err != nil {
		t.Fatalf("connect as the Pulse user: %v", err)
	}
	defer userConn.Close()
	otherQueue, otherOutput := pulse.InputQueue(other.client, "build"), pulse.ExchangeName(other.client, "build/normalized")
	attempts := map[string]func(ch *amqp.Channel) error{
		"declare an exchange outside the namespace": func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("exchange/someone-else/x", "topic", true, false, false, false, nil)
		},
		"consume another client's queue": func(ch *amqp.Channel) error {
			_, err := ch.Consume(otherQueue, "", false, false, false, false, nil)
			return err
		},
		"purge another client's queue": func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge(otherQueue, false)
			return err
		},
		"delete another client's queue": func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(otherQueue, false, false, false)
			return err
		},
		"delete another client's exchange": func(ch *amqp.Channel) error {
			return ch.ExchangeDelete(otherOutput, false, false)
		},
		"bind another client's queue": func(ch *amqp.Channel) error {
			return ch.QueueBind(otherQueue, "#", w.upstream, false, nil)
		},
		"publish to another client's exchange": func(ch *amqp.Channel) error {
			// A refused publish closes the channel with the reason.
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			if err := ch.Publish(otherOutput, "build.x", false, false, amqp.Publishing{Body: []byte("{}")}); err != nil {
				return err
			}
			select {
			case err := <-closed:
				if err == nil {
					return nil
				}
				return err
			case <-time.After(5 * time.Second):
				return nil
			}
		},
	}
	for name, attempt := range attempts {
		ch, err := userConn.Channel()
		if err != nil {
			t.Fatalf("%s: open a channel: %v", name, err)
		}
		if err := attempt(ch); err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED") {
			t.Errorf("%s: %v, want ACCESS_REFUSED", name, err)
		}
	}
	if q, err := w.inspect(otherQueue); err != nil || q.Consumers == 0 {
		t.Errorf("the other client's queue after the attempts: %v consumers, %v", q.Consumers, err)
	}
	flow(t, w, rn)
}

// pulseUser creates a broker user named after the world's client id with
// exactly the Pulse permissions, and a password that needs URL-encoding,
// and returns its connection string.
func (w *world) pulseUser() string {
	w.t.Helper()
	switch {
	case w.user != "":
	case w.own != nil:
		w.user = w.own.url(0, w.own.pulseUser(w.client))
	default:
		w.user = brokertest.PulseUser(w.t, w.client)
	}
	return w.user
}

// newWorldOnOwnNode starts a RabbitMQ node of the test's own
// (deploy/local/cluster.sh, one node on ports of its own) and returns a
// world on it, for a test that breaks the broker: the shared broker, and
// whatever else uses it, never sees the fault. Without rabbitmq-server or
// root it skips, or fails with CI=true.
func newWorldOnOwnNode(t *testing.T) *world {
	t.Helper()
	c := startCluster(t, 1)
	guest := url.UserPassword("guest", "guest")
	conn, err := amqp.Dial(c.url(0, guest))
	if err != nil {
		t.Fatalf("the test's own node: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	w := newWorld(t, conn)
	w.own = c
	w.nodes = c.urls(guest)
	return w
}

// ctl runs rabbitmqctl with args against the world's own node; a test on
// the shared broker that tries it fails, naming newWorldOnOwnNode.
func (w *world) ctl(args ...string) string {
	w.t.Helper()
	out, err := w.ctlCommand(args...).CombinedOutput()
	if err != nil {
		w.t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ctlCommand is the command of ctl, not yet run.
func (w *world) ctlCommand(args ...string) *exec.Cmd {
	w.t.Helper()
	if w.own == nil {
		w.t.Fatalf("rabbitmqctl %s would act on the shared broker: a test that breaks the broker runs on a node of its own (newWorldOnOwnNode)", args[0])
	}
	return exec.Command("rabbitmqctl", append([]string{"-n", w.own.names[0]}, args...)...)
}

func rabbitmqctl(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s (the test needs rabbitmqctl, run as root, to create a Pulse user)", args[0], err, out)
	}
}
