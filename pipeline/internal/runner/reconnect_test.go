package runner_test

import (
	"testing"
	"time"
)

// TestReconnect closes every connection of the broker while the runner
// consumes, and checks a message published afterwards still comes out.
func TestReconnect(t *testing.T) {
	w := newWorldOnOwnNode(t)
	rn := start(t, w.config(w.pulseUser()))
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")

	w.ctl("close_all_connections", "pulsetranslator reconnect test")
	// The test's own connection went too: open a new one.
	fresh, err := w.dial()
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
