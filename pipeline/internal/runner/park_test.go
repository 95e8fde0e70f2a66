package runner_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// TestUnparkableMessageIsRejectedOnce runs a pipeline whose user may not
// write to its park exchange, so that the broker refuses every parked
// copy (403 ACCESS_REFUSED), minimal headers or not. A malformed message
// is then rejected, once: the input queue dead-letters it into the dead
// queue itself (x-death reason rejected), it is never requeued to fail
// again, and it is not counted as parked.
func TestUnparkableMessageIsRejectedOnce(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	park := pulse.ParkExchange(w.client, "build")
	user := brokertest.PulseUserWriting(t, w.client, fmt.Sprintf("^(exchange|queue)/%s/(?!%s$).*",
		regexp.QuoteMeta(w.client), regexp.QuoteMeta(strings.TrimPrefix(park, "queue/"+w.client+"/"))))
	w.user = user
	proc := w.startTranslator(w.configText(user, "[builtin:buildbot.yaml]", ""))
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	const key = "build.mozilla-central-linux64.7.log_uploaded"
	w.publishRaw(key, []byte(`{"payload": {"build": `))

	d := receive(t, dead, "the dead queue")
	deaths, _ := d.Headers["x-death"].([]interface{})
	if len(deaths) != 1 || !strings.Contains(fmt.Sprint(deaths[0]), "reason:rejected") ||
		!strings.Contains(fmt.Sprint(deaths[0]), "queue:"+pulse.InputQueue(w.client, "build")) {
		t.Errorf("the dead queue holds a message with x-death %v; want one entry, reason rejected, from the input queue", d.Headers["x-death"])
	}
	if _, ok := d.Headers[pulse.HeaderClass]; ok || string(d.Body) != `{"payload": {"build": ` {
		t.Errorf("the dead queue holds %q with headers %v; want the input itself, dead-lettered by the broker", d.Body, d.Headers)
	}
	select {
	case again := <-dead:
		t.Errorf("a second message in the dead queue: %v", again.Headers)
	case <-time.After(3 * time.Second):
	}
	logs := proc.logs.String()
	if n := strings.Count(logs, "cannot park a message"); n != 1 {
		t.Errorf("%d messages could not be parked; want the one, once (a requeued message fails again and again):\n%s", n, logs)
	}
	if strings.Contains(logs, "parked in the dead queue") {
		t.Errorf("a copy the broker refused was logged as parked:\n%s", logs)
	}
}
