package runner_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/reference"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// consumerProcess is a consumer written in another language, run as a
// process of its own, that prints "ready" once its queue is bound and
// then one JSON line per message.
type consumerProcess struct {
	name  string
	lines chan string
	done  chan error
	// stderr is what the process wrote there, for a failure's message.
	stderr *strings.Builder
}

// startConsumer runs cmd and waits until it says it is ready.
func startConsumer(t *testing.T, name string, cmd *exec.Cmd) *consumerProcess {
	t.Helper()
	c := &consumerProcess{name: name, lines: make(chan string, 100), done: make(chan error, 1), stderr: &strings.Builder{}}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	select {
	case line, ok := <-c.lines:
		if !ok || line != "ready" {
			t.Fatalf("%s did not get ready (it printed %q): %v\n%s", name, line, <-c.done, c.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready within 60s\n%s", name, c.stderr)
	}
	return c
}

// consumedMessages reads the JSON lines c prints, each a T, until it
// exits.
func consumedMessages[T any](t *testing.T, c *consumerProcess) []*T {
	t.Helper()
	var got []*T
	timeout := time.After(90 * time.Second)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				if err := <-c.done; err != nil {
					t.Errorf("%s: %v\n%s", c.name, err, c.stderr)
				}
				return got
			}
			v := new(T)
			if err := json.Unmarshal([]byte(line), v); err != nil {
				t.Fatalf("%s printed %q: %v", c.name, line, err)
			}
			got = append(got, v)
		case <-timeout:
			t.Fatalf("%s did not finish within 90s; it printed %d messages\n%s", c.name, len(got), c.stderr)
		}
	}
}

// TestConsumersAsPulseUsersWriteThem: consumers written as Pulse's users
// write them, each as a user with only the Pulse permissions of its own
// name, receive the normalized messages: one on kombu (what mozillapulse
// is built on) bound only to a CC route (route.platform.win32), with its payload decoded by kombu
// from the content type; one on taskcluster-lib-pulse bound to the build
// exchange with the routing-key reference that `pulsetranslator docs
// --format json` gives, from which the library parses each routing key
// into the same values the payload holds, and which reports the CC routes.
func TestConsumersAsPulseUsersWriteThem(t *testing.T) {
	python := brokertest.DebianPython(t, "kombu", "python3-kombu")
	nodeModules := brokertest.NpmPackage(t, "taskcluster-lib-pulse@11.1.0")
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	cfg := w.config(w.pulseUser())
	start(t, cfg)

	ship, err := process.Ship(translator.Default)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reference.BuildReference(cfg, "build", translator.Default, ship)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ref.Entries, func(e reference.ReferenceEntry) bool { return e.Name == "build" })
	if i < 0 {
		t.Fatalf("the reference has no build entry: %+v", ref.Entries)
	}
	entry := ref.Entries[i]
	exchange := ref.ExchangePrefix + entry.Exchange
	if exchange != pulse.ExchangeName(w.client, "build/normalized") {
		t.Fatalf("the reference names the exchange %s; the pipeline publishes to %s", exchange, pulse.ExchangeName(w.client, "build/normalized"))
	}

	consumer := w.client + "-consumer"
	consumerURL := brokertest.PulseUser(t, consumer)
	u, err := url.Parse(consumerURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			for _, q := range []string{"kombu", "tclp"} {
				_, _ = ch.QueueDelete("queue/"+consumer+"/"+q, false, false, false)
			}
		}
	})
	const revision = "cd5fab20f6bd128847ef8131c9aeed63cde019fc" // of both builds below
	asJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	scripts, err := filepath.Abs(filepath.Join("testdata", "consumers"))
	if err != nil {
		t.Fatal(err)
	}
	kombu := startConsumer(t, "the kombu consumer", exec.Command(python, filepath.Join(scripts, "kombu_consumer.py"), asJSON(map[string]any{
		"host": u.Hostname(), "port": u.Port(), "user": consumer, "password": password,
		"exchange": exchange, "queue": "queue/" + consumer + "/kombu", "routing_key": "route.platform.win32", "want": 1,
	})))
	node := exec.Command("node", filepath.Join(scripts, "tclp_consumer.js"), asJSON(map[string]any{
		"url": consumerURL, "namespace": consumer, "exchange": exchange, "pattern": "build.#",
		"reference": entry.RoutingKey, "queue": "tclp", "want": 2,
	}))
	node.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	tclp := startConsumer(t, "the taskcluster-lib-pulse consumer", node)

	for _, rel := range []string{"mozilla-central/build.mozilla-central-win32.343.log_uploaded", "mozilla-central/build.mozilla-central-linux64.105.log_uploaded"} {
		body, key := corpusFile(t, rel)
		w.publishRaw(key, body)
	}

	type kombuMessage struct {
		Exchange    string         `json:"exchange"`
		RoutingKey  string         `json:"routing_key"`
		ContentType string         `json:"content_type"`
		PayloadType string         `json:"payload_type"`
		Payload     map[string]any `json:"payload"`
		CC          []string       `json:"cc"`
	}
	got := consumedMessages[kombuMessage](t, kombu)
	if len(got) != 1 {
		t.Fatalf("the kombu consumer bound to route.platform.win32 got %d messages, want the win32 build's", len(got))
	}
	k := got[0]
	if k.Exchange != exchange || k.RoutingKey != "build.mozilla-central.win32.opt.mozilla-central-win32" || k.ContentType != "application/json" {
		t.Errorf("kombu: exchange %q, routing key %q, content type %q; want %s, the primary key, application/json", k.Exchange, k.RoutingKey, k.ContentType, exchange)
	}
	if k.PayloadType != "dict" || k.Payload["revision"] != revision || k.Payload["tree"] != "mozilla-central" {
		t.Errorf("kombu decoded the body as a %s with payload %v; want a dict of the win32 build", k.PayloadType, k.Payload)
	}
	if want := []string{"route.tree.mozilla-central", "route.revision." + revision, "route.platform.win32"}; !slices.Equal(k.CC, want) {
		t.Errorf("kombu sees the CC header %v; want %v", k.CC, want)
	}

	type tclpMessage struct {
		Exchange   string            `json:"exchange"`
		RoutingKey string            `json:"routingKey"`
		Routing    map[string]string `json:"routing"`
		Routes     []string          `json:"routes"`
		Payload    map[string]any    `json:"payload"`
	}
	msgs := consumedMessages[tclpMessage](t, tclp)
	if len(msgs) != 2 {
		t.Fatalf("the taskcluster-lib-pulse consumer got %d messages, want 2", len(msgs))
	}
	platforms := map[string]bool{}
	for _, m := range msgs {
		p := m.Payload
		platforms[fmt.Sprint(p["platform"])] = true
		// The library's reading of the routing key, by the reference's
		// words, agrees with the message's own fields.
		want := map[string]string{
			"kind": "build", "tree": fmt.Sprint(p["tree"]), "platform": fmt.Sprint(p["platform"]),
			"buildtype": fmt.Sprint(p["buildtype"]), "tags": "", "builder": strings.TrimPrefix(m.RoutingKey, strings.Join([]string{"build", fmt.Sprint(p["tree"]), fmt.Sprint(p["platform"]), fmt.Sprint(p["buildtype"])}, ".")+"."),
		}
		if m.Exchange != exchange || fmt.Sprint(m.Routing) != fmt.Sprint(want) {
			t.Errorf("taskcluster-lib-pulse read %s on %s as %v; want %v", m.RoutingKey, m.Exchange, m.Routing, want)
		}
		for _, route := range []string{"tree." + fmt.Sprint(p["tree"]), "revision." + fmt.Sprint(p["revision"]), "platform." + fmt.Sprint(p["platform"])} {
			if !slices.Contains(m.Routes, route) {
				t.Errorf("taskcluster-lib-pulse reports the routes %v of %s; want %s among them", m.Routes, m.RoutingKey, route)
			}
		}
	}
	if !platforms["win32"] || !platforms["linux64"] {
		t.Errorf("the taskcluster-lib-pulse consumer got the platforms %v; want win32 and linux64", platforms)
	}
}
