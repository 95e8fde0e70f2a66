package runner_test

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// TestNoSecretsInLogs runs the command as a Pulse user, at debug level,
// through a broker-side disconnect and a parked message, then with a wrong
// password, a closed port, TLS against a plain port and a broken config:
// the password, plain or URL-encoded, appears in no log line and no error.
func TestNoSecretsInLogs(t *testing.T) {
	w := newWorldOnOwnNode(t)
	connection := w.pulseUser()
	u, _ := url.Parse(connection)
	password, _ := u.User.Password()
	forms := []string{password, url.QueryEscape(password), url.PathEscape(password), strings.ReplaceAll(url.QueryEscape(password), "%", "%25")}

	var logs []string
	proc := w.startTranslator(w.configText(connection, "[builtin:buildbot.yaml]", ""), "--log-level", "debug")
	w.publishRaw("build.x.1.log_uploaded", []byte(`{"not": "buildbot"}`))
	w.ctl("close_all_connections", "pulsetranslator secrets test")
	w.redial()
	if !w.waitFor(w.inputQueue(), 30*time.Second, func(int) bool { return w.consumers("build") > 0 }) {
		t.Fatal("the translator did not reconnect within 30s")
	}
	proc.kill()
	logs = append(logs, proc.logs.String())
	if !strings.Contains(logs[0], "parked in the dead queue") || !strings.Contains(logs[0], u.User.Username()) {
		t.Fatalf("the run's log lacks what this test looks through:\n%s", logs[0])
	}

	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), password+"-wrong")
	closed := *u
	closed.Host = "127.0.0.1:1"
	tlsToPlain := *u
	tlsToPlain.Scheme = "amqps"
	// Waiting for a broker that is not there, run logs each attempt, and
	// keeps trying: its log is read after a few attempts.
	waiting := w.launchTranslator(w.configText(closed.String(), "[builtin:buildbot.yaml]", ""), "--log-level", "debug")
	time.Sleep(3 * time.Second)
	waiting.kill()
	if attempts := strings.Count(waiting.logs.String(), "cannot connect to the broker"); attempts < 2 {
		t.Errorf("waiting for a closed port logged %d attempts in 3s; want one line per attempt:\n%s", attempts, waiting.logs.String())
	}
	logs = append(logs, waiting.logs.String())
	failures := map[string]string{
		"wrong password":   w.configText(wrong.String(), "[builtin:buildbot.yaml]", ""),
		"TLS to plain":     w.configText(tlsToPlain.String(), "[builtin:buildbot.yaml]", ""),
		"config error":     strings.Replace(w.configText(connection, "[builtin:buildbot.yaml]", ""), "translator: buildbot", "translator: nope", 1),
		"bad scheme":       w.configText(strings.Replace(connection, "amqp://", "http://", 1), "[builtin:buildbot.yaml]", ""),
		"unparseable port": w.configText(strings.Replace(connection, u.Host, "127.0.0.1:port", 1), "[builtin:buildbot.yaml]", ""),
	}
	forms = append(forms, password+"-wrong")
	for name, text := range failures {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(buildTranslator(t), "run", "--config", path, "--log-level", "debug")
		cmd.WaitDelay = 5 * time.Second
		done := make(chan []byte, 1)
		go func() { out, _ := cmd.CombinedOutput(); done <- out }()
		select {
		case out := <-done:
			if cmd.ProcessState.Success() {
				t.Errorf("%s: the command succeeded", name)
			}
			logs = append(logs, string(out))
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s: the command did not stop within 30s", name)
			logs = append(logs, string(<-done))
		}
	}
	for _, log := range logs {
		for _, line := range strings.Split(log, "\n") {
			for _, secret := range forms {
				if strings.Contains(line, secret) {
					t.Errorf("a log line shows the password: %s", line)
				}
			}
		}
	}
	t.Logf("%d runs, %d log lines, no password", len(logs), strings.Count(strings.Join(logs, ""), "\n"))
}

func (w *world) inputQueue() string { return "queue/" + w.client + "/build" }

// TestArtifactURLUserInfoStaysHidden publishes a build whose log URL holds
// a user and password, as an upstream message may: the log never appears,
// so the message waits and is parked at its deadline. The host is sent no
// credentials, and the password appears in no log line (at debug level),
// no wait copy's headers and not in the parked message's reason, which
// still names the URL with its user info redacted.
func TestArtifactURLUserInfoStaysHidden(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	const secret = "s3cret-artifact-password"
	base := strings.Replace(store.srv.URL, "http://", "http://reader:"+secret+"@", 1)
	build := gatedBuildAt(t, base, "private")

	logs := &brokertest.Logs{}
	tiers := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
	cfg := w.parse(w.gateConfig(w.pulseUser(), tiers, 1500*time.Millisecond, "dead"))
	rn, err := runner.New(cfg, translator.Default, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	runWith(t, rn)
	waiting := w.probe(pulse.HoldExchange(w.client, "build"), pulse.TierName(tiers[0]), pulse.TierName(tiers[1]))
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.publishRaw(build.key, build.body)
	parked := receive(t, dead, "the dead queue")
	reason := fmt.Sprint(parked.Headers[pulse.HeaderReason])
	redactedURL := strings.Replace(build.logURL, "reader:"+secret, "xxxxx", 1)
	if parked.Headers[pulse.HeaderClass] != pulse.ClassArtifactsMissing || !strings.Contains(reason, redactedURL) {
		t.Errorf("parked with class %v, reason %q; want %s naming %s", parked.Headers[pulse.HeaderClass], reason, pulse.ClassArtifactsMissing, redactedURL)
	}
	shown := []string{reason, logs.String()}
	for drained := false; !drained; {
		select {
		case d := <-waiting:
			shown = append(shown, fmt.Sprint(d.Headers))
		case <-time.After(time.Second):
			drained = true
		}
	}
	if len(shown) < 3 {
		t.Error("no wait copy was seen on the wait exchange")
	}
	if store.checks.Load() == 0 || store.credentials.Load() != 0 {
		t.Errorf("%d checks reached the log host, %d with credentials; want some, none with credentials", store.checks.Load(), store.credentials.Load())
	}
	if !strings.Contains(logs.String(), redactedURL) {
		t.Errorf("the debug log never names the checked URL %s:\n%s", redactedURL, logs.String())
	}
	for _, s := range shown {
		for _, line := range strings.Split(s, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("shows the artifact URL's password: %s", line)
			}
		}
	}
}
