package runner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/cli"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// TestTeardown runs a pipeline once, stops it, and lets its input queue
// fill from upstream, as happens after a run. "teardown" lists every
// queue and exchange the run declared, with the messages each holds;
// without --yes and without an answer it deletes nothing; with --yes it
// deletes them all, as the pipeline's user, and leaves the upstream
// exchange alone.
func TestTeardown(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	text := w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "")
	first, err := runner.New(w.parse(text), translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilStopped(t, first)()
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	for range 3 {
		w.publishRaw(key, body)
	}
	configFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	input := pulse.InputQueue(w.client, "build")
	queues := []string{input, pulse.DeadQueue(w.client, "build")}
	for _, tier := range []time.Duration{15 * time.Second, time.Minute, 5 * time.Minute} {
		queues = append(queues, pulse.WaitQueue(w.client, "build", tier))
	}

	var stdout, stderr bytes.Buffer
	if code := cli.Main([]string{"teardown", "--config", configFile}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "nothing deleted") {
		t.Fatalf("teardown without --yes and no answer: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !regexp.MustCompile(`queue +` + regexp.QuoteMeta(input) + ` +3 messages`).MatchString(stdout.String()) {
		t.Errorf("teardown does not say the input queue holds 3 messages:\n%s", stdout.String())
	}
	for _, want := range append(queues, pulse.ExchangeName(w.client, "build/normalized"), pulse.HoldExchange(w.client, "build"), "consumers' queues bound to it lose their bindings") {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("teardown's list lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), w.upstream) {
		t.Errorf("teardown lists the upstream exchange:\n%s", stdout.String())
	}
	if !brokertest.QueueExists(t, conn, input) {
		t.Fatal("teardown without an answer deleted the input queue")
	}

	stdout.Reset()
	stderr.Reset()
	if code := cli.Main([]string{"teardown", "--config", configFile, "--yes"}, &stdout, &stderr); code != 0 {
		t.Fatalf("teardown --yes: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, q := range queues {
		if brokertest.QueueExists(t, conn, q) {
			t.Errorf("teardown --yes left %s behind", q)
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive(w.upstream, "topic", true, false, false, false, nil); err != nil {
		t.Errorf("teardown deleted the upstream exchange: %v", err)
	}
	for _, ex := range []string{pulse.ExchangeName(w.client, "build/normalized"), pulse.DeadExchange(w.client, "build"), pulse.ParkExchange(w.client, "build"), pulse.HoldExchange(w.client, "build")} {
		ch, _ := conn.Channel()
		if err := ch.ExchangeDeclarePassive(ex, "", false, false, false, false, nil); err == nil {
			t.Errorf("teardown --yes left the exchange %s behind", ex)
			ch.Close()
		}
	}
	stdout.Reset()
	if code := cli.Main([]string{"teardown", "--config", configFile, "--yes"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "nothing to delete") {
		t.Errorf("a second teardown: exit %d\n%s", code, stdout.String())
	}
}
