package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// TestReplay publishes a folder of raw messages with "replay", as a Pulse
// user to an exchange of its own, and finds each on a queue bound to it,
// with the routing key of its _meta.
func TestReplay(t *testing.T) {
	client := fmt.Sprintf("replaytest-%d", time.Now().UnixNano()%1e9)
	brokertest.Require(t)
	user := brokertest.PulseUser(t, client)
	conn, err := amqp.Dial(user)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	exchange, queue := "exchange/"+client+"/raw", "queue/"+client+"/probe"
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, config, fmt.Sprintf("client_id: %s\nconnection: %s\npipelines:\n  - name: build\n    translator: buildbot\n    bindings: [{exchange: exchange/build/, routing_keys: ['#']}]\n    outputs: [{exchange: build/normalized}]\n", client, user))
	dir := filepath.Join(corpus, "mozilla-central")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))

	var out, errOut strings.Builder
	if code := Main([]string{"replay", "--config", config, "--exchange", exchange, dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), fmt.Sprintf("published %d message(s)", len(files))) {
		t.Errorf("stdout %q, want %d published", out.String(), len(files))
	}
	keys := map[string]bool{}
	for range files {
		d, ok, err := ch.Get(queue, true)
		if err != nil || !ok {
			t.Fatalf("only %d of %d messages on the queue (%v)", len(keys), len(files), err)
		}
		if d.DeliveryMode != amqp.Persistent || !strings.HasPrefix(d.RoutingKey, "build.mozilla-central") {
			t.Errorf("delivery mode %d, routing key %q", d.DeliveryMode, d.RoutingKey)
		}
		keys[d.RoutingKey] = true
	}
	if strings.Contains(errOut.String()+out.String(), "p/w@") {
		t.Error("the output shows the password")
	}
	if code := Main([]string{"replay", "--config", config, "--exchange", "exchange/someone-else/raw", dir}, &out, &errOut); code != 1 {
		t.Errorf("replay outside the namespace: exit %d, want 1", code)
	}
}

// TestReplayGivesUpOnAnUnansweredConfirm: replay to an exchange with a
// queue bound to it whose process does not answer gets no confirm; with
// --timeout 1s it ends within seconds, exit 1, saying so, instead of
// waiting for good.
func TestReplayGivesUpOnAnUnansweredConfirm(t *testing.T) {
	brokertest.Require(t)
	client := fmt.Sprintf("replaystuck-%d", time.Now().UnixNano()%1e9)
	user := brokertest.PulseUser(t, client)
	conn, err := amqp.Dial(user)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	exchange, queue := "exchange/"+client+"/raw", "queue/"+client+"/stuck"
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(queue, false, false, false)
		}
	})
	if err := ch.QueueBind(queue, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	resume := brokertest.SuspendQueue(t, queue, time.Minute)
	defer resume()
	config := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, config, fmt.Sprintf("client_id: %s\nconnection: %s\npipelines:\n  - name: build\n    translator: buildbot\n    bindings: [{exchange: exchange/build/, routing_keys: ['#']}]\n    outputs: [{exchange: build/normalized}]\n", client, user))
	var out, errOut strings.Builder
	began := time.Now()
	code := Main([]string{"replay", "--config", config, "--exchange", exchange, "--timeout", "1s", filepath.Join(corpus, "mozilla-central", "build.mozilla-central-linux64.105.log_uploaded")}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "no confirm") || time.Since(began) > 15*time.Second {
		t.Errorf("replay to a queue that does not answer: exit %d in %s, %q; want exit 1 within seconds, saying no confirm came", code, time.Since(began), errOut.String())
	}
}
