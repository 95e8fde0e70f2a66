package runner_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The rotation tests run a pipeline whose connection string is read where
// a rotation puts it (a file, a command), under a steady load of corpus
// messages, and count every output by message id.

// load publishes distinct copies of one corpus build upstream at about
// rate a second, each confirmed, until stop is called; then it returns
// the ids of the outputs they must give.
type load struct {
	t        *testing.T
	w        *world
	cfg      *config.Config
	key      string
	body     []byte
	sent     atomic.Int64
	stopOnce sync.Once
	stopped  chan struct{}
	done     chan struct{}
}

func startLoad(t *testing.T, w *world, cfg *config.Config, rate int) *load {
	t.Helper()
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	l := &load{t: t, w: w, cfg: cfg, key: key, body: body, stopped: make(chan struct{}), done: make(chan struct{})}
	conn, err := w.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(l.done)
		// Batches of rate/20 every 50 ms, each confirmed before the next.
		batch := max(rate/20, 1)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stopped:
				return
			case <-tick.C:
			}
			var confirms []*amqp.DeferredConfirmation
			for range batch {
				n := l.sent.Load() + int64(len(confirms))
				dc, err := ch.PublishWithDeferredConfirm(w.upstream, key, false, false, amqp.Publishing{
					ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: l.copy(n)})
				if err != nil {
					t.Errorf("publish upstream: %v", err)
					return
				}
				confirms = append(confirms, dc)
			}
			for _, dc := range confirms {
				if !dc.Wait() {
					t.Error("an upstream publish was nacked")
					return
				}
			}
			l.sent.Add(int64(len(confirms)))
		}
	}()
	return l
}

// copy is the n-th copy of the build: distinct by an extra field the
// translator ignores.
func (l *load) copy(n int64) []byte {
	return append([]byte(fmt.Sprintf(`{"copy": %d, `, n)), l.body[1:]...)
}

// stop stops the load and returns the ids of the outputs its messages must
// give.
func (l *load) stop() map[string]bool {
	l.stopOnce.Do(func() { close(l.stopped) })
	<-l.done
	return l.expected(l.sent.Load())
}

// expected is the ids of the outputs the first n copies must give, one
// each.
func (l *load) expected(n int64) map[string]bool {
	keys, bodies := make([]string, n), make([][]byte, n)
	for i := range n {
		keys[i], bodies[i] = l.key, l.copy(i)
	}
	ids := expectedOutputs(l.t, l.cfg, keys, bodies)
	if int64(len(ids)) != n {
		l.t.Fatalf("%d copies give %d outputs; want one each", n, len(ids))
	}
	return ids
}

// arrivals records the outputs that arrive on a probe: how many times each
// id came, and the longest time between two arrivals.
type arrivals struct {
	mu      sync.Mutex
	ids     map[string]int
	last    time.Time
	longest time.Duration
	at      []time.Time
}

func collectArrivals(deliveries <-chan amqp.Delivery) *arrivals {
	a := &arrivals{ids: map[string]int{}}
	go func() {
		for d := range deliveries {
			now := time.Now()
			a.mu.Lock()
			a.ids[d.MessageId]++
			if !a.last.IsZero() && now.Sub(a.last) > a.longest {
				a.longest = now.Sub(a.last)
			}
			a.last = now
			a.at = append(a.at, now)
			a.mu.Unlock()
		}
	}()
	return a
}

// firstAfter is when the first output after t arrived, or zero.
func (a *arrivals) firstAfter(t time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.at {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// settle waits until every expected output arrived, or limit passed, and
// returns how many were lost and how many came twice.
func (a *arrivals) settle(expected map[string]bool, limit time.Duration) (lost, duplicates int) {
	for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
		a.mu.Lock()
		lost, duplicates = 0, 0
		for id := range expected {
			if a.ids[id] == 0 {
				lost++
			}
		}
		for _, n := range a.ids {
			duplicates += n - 1
		}
		a.mu.Unlock()
		if lost == 0 || time.Now().After(deadline) {
			return lost, duplicates
		}
	}
}

// setPassword changes the password of the world's user on the broker.
func setPassword(t *testing.T, user, password string) {
	t.Helper()
	if out, err := exec.Command("rabbitmqctl", "change_password", user, password).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl change_password: %v\n%s", err, out)
	}
}

// withPassword is the connection string u with another password.
func withPassword(t *testing.T, u, password string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	parsed.User = url.UserPassword(parsed.User.Username(), password)
	return parsed.String()
}

// TestRotatedPasswordInAFile: the connection string is in a file, as a
// Kubernetes Secret mounted as a volume is. Under a steady load of 1,000
// messages a second, the user's password is changed, the file rewritten,
// and the broker closes the user's connections, as a rotation does. The
// same process reconnects with the new password: outputs resume within
// 2 s, nothing is lost, and no login is refused more than... none.
func TestRotatedPasswordInAFile(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	w.maxLength = 100000
	user := w.pulseUser()
	file := filepath.Join(t.TempDir(), "connection")
	writeFile(t, file, user+"\n")
	text := strings.Replace(w.configText(user, "[builtin:buildbot.yaml]", ""), "connection: "+user, "connection_file: "+file, 1)
	cfg := w.parse(text)
	_, logs, _ := startServed(t, cfg)
	probe := collectArrivals(w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#"))

	l := startLoad(t, w, cfg, 1000)
	time.Sleep(3 * time.Second)
	name, _ := url.Parse(user)
	rotated := withPassword(t, user, "rotated/"+w.client)
	setPassword(t, name.User.Username(), "rotated/"+w.client)
	writeFile(t, file, rotated+"\n")
	closedAt := time.Now()
	if out, err := exec.Command("rabbitmqctl", "close_all_user_connections", name.User.Username(), "rotation test").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl close_all_user_connections: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second)
	expected := l.stop()
	lost, duplicates := probe.settle(expected, 30*time.Second)
	resumed := probe.firstAfter(closedAt.Add(100 * time.Millisecond))
	t.Logf("%d messages at 1,000/s; the rotation at %s: outputs resumed %s after the broker closed the connection; %d of %d outputs lost, %d duplicates; longest gap between outputs %s",
		l.sent.Load(), closedAt.Format("15:04:05.000"), resumed.Sub(closedAt).Round(time.Millisecond), lost, len(expected), duplicates, probe.longest.Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%d outputs lost", lost)
	}
	if resumed.IsZero() || resumed.Sub(closedAt) > 2*time.Second {
		t.Errorf("outputs resumed %s after the rotation; want within 2s", resumed.Sub(closedAt))
	}
	text = logs.String()
	if strings.Contains(text, "rotated/"+w.client) || strings.Contains(text, url.QueryEscape("rotated/"+w.client)) {
		t.Error("a log line holds the new password")
	}
}

// TestCommandCredentialsRenewedBeforeExpiry: the connection string comes
// from a command that claims new credentials at each run (a new password,
// as taskcluster's claimNamespace hands out) valid for 4 s. Under load,
// the process runs it again and reconnects before each expiry, so that no
// login is refused, and every output arrives.
func TestCommandCredentialsRenewedBeforeExpiry(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	user := w.pulseUser()
	name, _ := url.Parse(user)
	dir := t.TempDir()
	claims := filepath.Join(dir, "claims")
	command := filepath.Join(dir, "claim.sh")
	writeFile(t, command, fmt.Sprintf(`#!/bin/sh
# Claims new credentials: a new password, valid for 4 s.
n=$(($(wc -l < %[1]s 2>/dev/null || echo 0) + 1))
password="claim-$n-%[2]s"
rabbitmqctl change_password %[2]s "$password" >/dev/null 2>&1 || { echo "cannot change the password" >&2; exit 1; }
expires=$(date -u -d '+4 seconds' +%%Y-%%m-%%dT%%H:%%M:%%S.%%NZ)
echo "$(date -u +%%s.%%N) $expires" >> %[1]s
echo "claimed credentials $n for amqp://%[2]s:$password@127.0.0.1" >&2
printf '{"connection": "amqp://%[2]s:%%s@%[3]s/", "expires": "%%s"}\n' "$password" "$expires"
`, claims, name.User.Username(), name.Host))
	if err := os.Chmod(command, 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(w.configText(user, "[builtin:buildbot.yaml]", ""), "connection: "+user, "connection_command: ["+command+"]", 1)
	cfg := w.parse(text)
	_, logs, _ := startServed(t, cfg)
	probe := collectArrivals(w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#"))
	l := startLoad(t, w, cfg, 200)
	time.Sleep(13 * time.Second)
	expected := l.stop()
	lost, duplicates := probe.settle(expected, 30*time.Second)

	data, err := os.ReadFile(claims)
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	var expires []time.Time
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var sec float64
		var exp string
		if _, err := fmt.Sscanf(line, "%f %s", &sec, &exp); err != nil {
			t.Fatalf("claims line %q: %v", line, err)
		}
		e, err := time.Parse(time.RFC3339Nano, exp)
		if err != nil {
			t.Fatal(err)
		}
		at = append(at, time.Unix(0, int64(sec*1e9)))
		expires = append(expires, e)
	}
	t.Logf("%d messages at 200/s for 13 s: %d claims, %d of %d outputs lost, %d duplicates, longest gap between outputs %s",
		l.sent.Load(), len(at), lost, len(expected), duplicates, probe.longest.Round(time.Millisecond))
	if len(at) < 4 {
		t.Errorf("%d claims in 13 s of credentials that last 4 s; want a claim before each expiry", len(at))
	}
	for i := 1; i < len(at); i++ {
		if !at[i].Before(expires[i-1]) {
			t.Errorf("claim %d at %s, after claim %d's credentials expired at %s", i+1, at[i].Format("15:04:05.000"), i, expires[i-1].Format("15:04:05.000"))
		}
	}
	text = logs.String()
	if strings.Contains(text, "refused") {
		t.Errorf("a login was refused:\n%s", text)
	}
	if strings.Contains(text, "claim-") && !strings.Contains(text, "claimed credentials") {
		t.Errorf("the log shows a password:\n%s", text)
	}
	if strings.Count(text, "claimed credentials") < 4 || strings.Contains(text, ":claim-") {
		t.Errorf("the command's standard error is not logged, or not redacted:\n%s", text)
	}
	if lost > 0 {
		t.Errorf("%d outputs lost", lost)
	}
}

// recycleSeconds is how long TestRecycleUnderLoad drains its backlog with
// recycling (about): PULSE_RECYCLE_SECONDS, default 4 (60 for the figures
// of docs/configuration.md).
func recycleSeconds(t *testing.T) int {
	if v := os.Getenv("PULSE_RECYCLE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("PULSE_RECYCLE_SECONDS=%q: give 2 or more", v)
		}
		return n
	}
	return 4
}

// drainBacklog publishes n copies of a corpus build into a pipeline's
// input queue while nothing consumes, then runs the pipeline, its
// connection recycled every recycle (unless empty), until every output
// arrived, and returns how long that took, what
// arrived, and the pipeline's log.
func drainBacklog(t *testing.T, n int, recycle string) (time.Duration, *arrivals, map[string]bool, string) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	w.maxLength = 2 * n
	text := w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", "")
	if recycle != "" {
		text = strings.Replace(text, "publish_timeout: 10s", "publish_timeout: 10s\nrecycle_interval: "+recycle, 1)
	}
	cfg := w.parse(text)
	first, err := runner.New(cfg, translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	runUntilStopped(t, first)() // declares the topology
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	l := &load{t: t, cfg: cfg, key: key, body: body}
	builds := make([]gatedBuild, n)
	for i := range builds {
		builds[i] = gatedBuild{key: key, body: l.copy(int64(i))}
	}
	if err := w.publishMany(builds); err != nil {
		t.Fatal(err)
	}
	expected := l.expected(int64(n))
	probe := collectArrivals(w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#"))
	began := time.Now()
	_, logs, _ := startServed(t, w.parse(text))
	lost, _ := probe.settle(expected, 10*time.Minute)
	took := time.Since(began)
	if lost > 0 {
		t.Fatalf("%d of %d outputs lost", lost, len(expected))
	}
	return took, probe, expected, logs.String()
}

// TestRecycleUnderLoad drains a backlog with the connection recycled every
// 2 s (make before break), and the same backlog without recycling: nothing
// is lost, and duplicates are at most what was in flight per recycle (the
// consumers' prefetch). The throughput of both and the longest gap between
// two outputs are logged, a measurement rather than a check (a timed
// assertion fails on a busy machine): with PULSE_RECYCLE_SECONDS=60 and
// nothing else running, the figures of docs/configuration.md.
func TestRecycleUnderLoad(t *testing.T) {
	brokerOrSkip(t)
	// The baseline first, to size the backlog to recycleSeconds.
	const probeN = 2000
	took, _, _, _ := drainBacklog(t, probeN, "")
	rate := float64(probeN) / took.Seconds()
	n := int(rate * float64(recycleSeconds(t)))
	plain, plainArrivals, _, _ := drainBacklog(t, n, "")
	recycled, arrived, expected, logs := drainBacklogRecycled(t, n)
	recycles := strings.Count(logs, "recycled the connection")
	_, duplicates := arrived.settle(expected, 0)
	ratio := plain.Seconds() / recycled.Seconds()
	t.Logf("%d messages: %s without recycling (%.0f/s, longest gap %s), %s recycled every 2 s (%.0f/s, longest gap %s): %d recycles, %d duplicates, throughput ratio %.2f",
		n, plain.Round(time.Millisecond), float64(n)/plain.Seconds(), plainArrivals.longest.Round(time.Millisecond),
		recycled.Round(time.Millisecond), float64(n)/recycled.Seconds(), arrived.longest.Round(time.Millisecond), recycles, duplicates, ratio)
	// Every 2 s from the moment the last one was made, which takes a dial
	// and the topology's declaration.
	if recycles < int(recycled.Seconds()/2*0.8) {
		t.Errorf("%d recycles in %s; want one about every 2 s", recycles, recycled)
	}
	// What one recycle may send twice: what its consumers held (2
	// channels of the default prefetch here).
	if limit := recycles * 2 * config.DefaultPrefetch; duplicates > limit {
		t.Errorf("%d duplicates over %d recycles; want at most %d, what was in flight", duplicates, recycles, limit)
	}
}

func drainBacklogRecycled(t *testing.T, n int) (time.Duration, *arrivals, map[string]bool, string) {
	var took time.Duration
	var a *arrivals
	var expected map[string]bool
	var logs string
	t.Run("recycled", func(t *testing.T) {
		took, a, expected, logs = drainBacklog(t, n, "2s")
	})
	return took, a, expected, logs
}

// TestUnreadableSourceKeepsTheConnection: the connection file goes
// missing while the connection is recycled every second. The recycles
// fail, saying why, backing off; the current connection goes on (ready,
// and messages still flow); once the file is back, recycling resumes.
func TestUnreadableSourceKeepsTheConnection(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	user := w.pulseUser()
	file := filepath.Join(t.TempDir(), "connection")
	writeFile(t, file, user+"\n")
	text := strings.Replace(w.configText(user, "[builtin:buildbot.yaml]", ""), "connection: "+user, "connection_file: "+file, 1)
	text = strings.Replace(text, "publish_timeout: 10s", "publish_timeout: 10s\nrecycle_interval: 1s", 1)
	_, logs, srv := startServed(t, w.parse(text))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "recycled the connection"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no recycle within 10s:\n%s", logs)
		}
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	time.Sleep(6 * time.Second)
	failed := strings.Count(logs.String(), "cannot make the connection that replaces this one; keeping it")
	if failed == 0 || !strings.Contains(logs.String(), "no such file") {
		t.Fatalf("nothing says the connection file is missing:\n%s", logs)
	}
	// Tried after 1 s, then after backoffs of 0.5, 1, 2 s...: a handful
	// in 6 s, not one a second.
	if failed > 5 {
		t.Errorf("%d failed recycles in 6 s; want them backed off", failed)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz with the connection kept: %d %s", code, body)
	}
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key, body)
	receive(t, main, "the output exchange, while the file is missing")

	recycledBefore := strings.Count(logs.String(), "recycled the connection")
	writeFile(t, file, user+"\n")
	for deadline := time.Now().Add(15 * time.Second); strings.Count(logs.String(), "recycled the connection") == recycledBefore; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no recycle within 15s of the file coming back:\n%s", logs)
		}
	}
	t.Logf("the file missing for %s: %d recycles failed, the connection kept", time.Since(removed).Round(time.Second), failed)
}

// TestRefusedLoginReadsTheSourceAgain: after a rotation, the credentials
// service still gives the old password once (it lags), so the broker
// refuses the login (RabbitMQ answers a refused login after 3 s); the
// source is read again at once, gives the new password, and the process
// connects with it without waiting a backoff.
func TestRefusedLoginReadsTheSourceAgain(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	user := w.pulseUser()
	name, _ := url.Parse(user)
	dir := t.TempDir()
	rotated := withPassword(t, user, "rotated-"+w.client)
	// Runs 1 and 2 give the old password, every later run the new one.
	writeFile(t, filepath.Join(dir, "1"), user)
	writeFile(t, filepath.Join(dir, "2"), user)
	writeFile(t, filepath.Join(dir, "later"), rotated)
	command := filepath.Join(dir, "creds.sh")
	writeFile(t, command, fmt.Sprintf(`#!/bin/sh
n=$(($(cat %[1]s/runs 2>/dev/null || echo 0) + 1)); echo $n > %[1]s/runs
cat %[1]s/$n 2>/dev/null || cat %[1]s/later
`, dir))
	if err := os.Chmod(command, 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(w.configText(user, "[builtin:buildbot.yaml]", ""), "connection: "+user, "connection_command: ["+command+"]", 1)
	rn, logs, _ := startServed(t, w.parse(text))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "#")

	setPassword(t, name.User.Username(), "rotated-"+w.client)
	closedAt := time.Now()
	if out, err := exec.Command("rabbitmqctl", "close_all_user_connections", name.User.Username(), "rotation test").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl close_all_user_connections: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); !rn.Ready() || rn.Broker() == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not connected again within 10s:\n%s", logs)
		}
	}
	// Ready may still be the old session's, until the broker's close
	// arrives: wait for the log's second connection.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), "connected to the broker") < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not connected again within 10s:\n%s", logs)
		}
	}
	took := time.Since(closedAt)
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	w.publishRaw(key, body)
	receive(t, main, "the output exchange, after the rotation")
	text = logs.String()
	if !strings.Contains(text, "the connection source now gives other credentials: trying them at once") {
		t.Errorf("the refused login did not read the source again:\n%s", text)
	}
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	t.Logf("connected again %s after the rotation, the command run %s times", took.Round(time.Millisecond), strings.TrimSpace(string(runs)))
	// The loss's backoff (under a second), RabbitMQ's 3 s before it
	// refuses a login, and nothing more.
	if took > 4500*time.Millisecond || strings.TrimSpace(string(runs)) != "3" {
		t.Errorf("connected again after %s, the command run %s times; want at once after the refusal, after 3 runs", took, strings.TrimSpace(string(runs)))
	}
	if strings.Contains(text, "rotated-"+w.client) {
		t.Error("a log line holds the new password")
	}
}
