package runner_test

import (
	"os/exec"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestReconnect closes every connection of the broker while the runner
// consumes, and checks a message published afterwards still comes out.
func TestReconnect(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	rn := start(t, w.config(w.pulseUser()))
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")

	out, err := exec.Command("rabbitmqctl", "close_all_connections", "pulsetranslator reconnect test").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl close_all_connections: %v\n%s", err, out)
	}
	// The test's own connection went too: open a new one.
	fresh, err := amqp.Dial(adminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	ch, err := fresh.Channel()
	if err != nil {
		t.Fatal(err)
	}
	w.admin = ch
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	main := w.probe("exchange/"+w.client+"/build/normalized", "build.#")
	deadline := time.Now().Add(30 * time.Second)
	for rn.Stats("build").Published.Load() == 0 && time.Now().Before(deadline) {
		w.publishRaw(key, body)
		select {
		case d := <-main:
			if d.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
				t.Fatalf("routing key %q", d.RoutingKey)
			}
			return
		case <-time.After(2 * time.Second):
		}
	}
	t.Fatal("no output within 30s of the broker closing every connection")
}
