package bench

import (
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	_ "github.com/pulsetranslator/pulsetranslator/translators/all"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestMain lets the test binary be the baseline worker and the log
// server, which pulsebench starts as itself with its command and
// -serve-baseline or -serve-logs.
// With PULSEBENCH_TEST_MAIN=1 it is pulsebench itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		os.Exit(Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	if os.Getenv("PULSEBENCH_TEST_MAIN") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// buildTranslator builds cmd/pulsetranslator into the test's folder.
func buildTranslator(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "pulsetranslator")
	if out, err := exec.Command("go", "build", "-o", binary, "../../../cmd/pulsetranslator").CombinedOutput(); err != nil {
		t.Fatalf("go build ../../../cmd/pulsetranslator: %v\n%s", err, out)
	}
	return binary
}

// TestRunsLeaveNothingBehind runs the translator and the baseline once
// each and checks that neither leaves a queue bound upstream (it would
// take a copy of every input of the next run, and slow it) or parked
// messages queued.
func TestRunsLeaveNothingBehind(t *testing.T) {
	conn := brokertest.Connect(t)
	binary := buildTranslator(t)
	o := testOptions(100)
	o.client = "pulsebench-between"
	o.broker = brokertest.AdminURL()
	su, err := prepare(o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer su.cleanup()
	nm := su.nm
	if err := declare(conn, nm, o.n, o.queueType); err != nil {
		t.Fatal(err)
	}
	defer cleanup(conn, nm)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	for _, run := range []struct {
		name string
		run  func() (result, error)
	}{
		{"translator", func() (result, error) { return runTranslator(conn, o, nm, su.stream, binary, su.configPath) }},
		{"baseline", func() (result, error) { return runBaseline(conn, o, nm, su.stream) }},
	} {
		r, err := run.run()
		if err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		if r.lost != 0 || r.parked != su.stream.parked {
			t.Fatalf("%s: lost %d, parked %d of %d", run.name, r.lost, r.parked, su.stream.parked)
		}
		// A mandatory message comes back when no queue is bound upstream.
		if err := ch.Publish(nm.upstream, "build.x.1.finished", true, false, amqp.Publishing{Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-returns:
		case <-time.After(5 * time.Second):
			t.Errorf("after the %s run a queue is still bound to %s", run.name, nm.upstream)
		}
		for _, q := range []string{nm.input, nm.deadQueue, nm.baselineQueue, nm.baselineDeadQueue} {
			if n := parkedIn(conn, q); n > 0 {
				t.Errorf("after the %s run %s holds %d messages", run.name, q, n)
			}
		}
	}
}

// TestBenchOnTheBroker runs a small benchmark end to end on the real
// broker: the translator and the bare baseline each deliver every output
// once and park every refused input.
func TestBenchOnTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two translator replicas and a baseline worker on the broker")
	}
	brokertest.Require(t)
	o := testOptions(400)
	o.broker, o.translator, o.replicas, o.runs, o.warmup, o.gate = brokertest.AdminURL(), buildTranslator(t), 2, 2, true, true
	// The workers run as production does: a user with only the Pulse
	// permissions of the client id, whose password stays out of the report.
	o.workerBroker = brokertest.PulseUser(t, o.client)
	var out strings.Builder
	m, err := bench(o, &out)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if m.outputs < 400 || m.parked == 0 {
		t.Fatalf("the stream of 400 has %d outputs and %d refused inputs", m.outputs, m.parked)
	}
	// The warm-up pair is printed, and left out of the runs.
	if len(m.base) != 2 || len(m.ours) != 2 || !strings.Contains(out.String(), "baseline warm-up") || !strings.Contains(out.String(), "translator x2 warm-up") {
		t.Fatalf("%d baseline and %d translator runs, want 2 each after a warm-up of each", len(m.base), len(m.ours))
	}
	for _, r := range append(m.base, m.ours...) {
		if r.inputs != 400 || r.outputs != m.outputs || r.lost != 0 || r.duplicates != 0 || r.parked != m.parked {
			t.Errorf("%s: %d inputs, %d outputs, %d lost, %d duplicates, %d parked; want 400, %d, 0, 0, %d",
				r.name, r.inputs, r.outputs, r.lost, r.duplicates, r.parked, m.outputs, m.parked)
		}
		if r.rate() <= 0 || r.p50 <= 0 || r.p99 < r.p50 || r.workerCPU <= 0 {
			t.Errorf("%s: %.0f msgs/s, p50 %s, p99 %s, worker CPU %s", r.name, r.rate(), r.p50, r.p99, r.workerCPU)
		}
	}
	for _, r := range m.ours {
		if r.peakRSS < 1<<20 || r.peakRSS > 1<<30 {
			t.Errorf("%s: peak RSS %d bytes", r.name, r.peakRSS)
		}
	}
	if !strings.Contains(out.String(), "translator / baseline: ") {
		t.Errorf("no ratio in the report")
	}
	// The translator checked the logs at the log server process: the
	// checks it answered are those of the two translator runs and the
	// warm-up.
	_, report, _ := strings.Cut(out.String(), "log checks answered by the local log server: ")
	if checks, err := strconv.Atoi(strings.TrimSpace(report)); err != nil || checks <= 0 {
		t.Errorf("the log server answered %q checks", report)
	}
	if u, _ := url.Parse(o.workerBroker); strings.Contains(out.String(), u.User.String()) || !strings.Contains(out.String(), "workers connect as amqp://"+o.client+":xxxxx@") {
		t.Errorf("the report does not name the workers' user, or shows its password")
	}
	// Nothing of the benchmark is left on the broker.
	conn := brokertest.Connect(t)
	nm := namesOf(o.client)
	noQueues(t, conn, nm.input, nm.deadQueue, nm.baselineQueue, nm.baselineDeadQueue)
}

// TestInterruptStopsWorkersAndCleansUp stops pulsebench with SIGINT in the
// middle of a run: it stops the translator and deletes the benchmark's
// queues and exchanges before it exits.
func TestInterruptStopsWorkersAndCleansUp(t *testing.T) {
	conn := brokertest.Connect(t)
	binary := buildTranslator(t)
	client := "pulsebench-interrupt"
	cmd := exec.Command(os.Args[0], "-broker", brokertest.AdminURL(), "-translator", binary, "-corpus", corpusDir,
		"-client", client, "-n", "20000", "-runs", "1", "-baseline=false", "-warmup=false")
	cmd.Env = append(os.Environ(), "PULSEBENCH_TEST_MAIN=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nm := namesOf(client)
	defer cleanup(conn, nm)
	consuming := func() bool {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(nm.input, true, false, false, false, nil)
		return err == nil && q.Consumers > 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for !consuming() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no translator consumed %s within a minute:\n%s", nm.input, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 130 {
		t.Errorf("pulsebench ended with %v, want exit status 130", err)
	}
	if !strings.Contains(out.String(), "stopping the workers") {
		t.Errorf("pulsebench did not say what it undid:\n%s", out.String())
	}
	if running := processesOf(binary); len(running) > 0 {
		t.Errorf("translator processes %v still run after pulsebench ended", running)
	}
	noQueues(t, conn, nm.input, nm.baselineQueue)
}

// processesOf lists the processes running the program at path.
func processesOf(path string) []string {
	var pids []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), path+"\x00") {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

// noQueues fails the test for each of queues the broker still has.
func noQueues(t *testing.T, conn *amqp.Connection, queues ...string) {
	t.Helper()
	for _, q := range queues {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			t.Errorf("queue %s is left on the broker", q)
		}
		ch.Close()
	}
}

// TestCleanupDeletesWaitQueues: the translator's wait queues, which it
// declares and never deletes, go with the benchmark's other names.
func TestCleanupDeletesWaitQueues(t *testing.T) {
	conn := brokertest.Connect(t)
	nm := namesOf("pulsebench-waitgone")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var queues []string
	for _, tier := range config.DefaultWaitTiers {
		q := pulse.WaitQueue(nm.client, "build", tier)
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		queues = append(queues, q)
	}
	cleanup(conn, nm)
	for _, q := range queues {
		probe, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := probe.QueueDeclarePassive(q, true, false, false, false, nil); err == nil {
			t.Errorf("%s is still there after cleanup", q)
			_ = probe.Close()
		}
	}
}

// TestHangingBenchmark runs the hanging-host benchmark briefly: every
// steady message arrives, with a latency, in both runs, and none of the
// messages whose log host hangs is published.
func TestHangingBenchmark(t *testing.T) {
	brokertest.Require(t)
	o := testOptions(1)
	o.translator = buildTranslator(t)
	o.client = "pulsebench-hanging"
	o.broker = brokertest.AdminURL()
	o.mix = "mozilla-central/build.mozilla-central-linux64.105.log_uploaded"
	o.hangingRate, o.steadyRate, o.duration = 20, 50, 2*time.Second
	var out strings.Builder
	if err := benchHanging(o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"hanging   0/s: 100 steady sent", "hanging  20/s: 100 steady sent", "100 outputs, lost 0", "hanging sent 40, published 0", "median of 1 runs, with 20/s hanging"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q:\n%s", want, text)
		}
	}
}

// TestTheBinariesRunTheirWorkers runs a small benchmark through the real
// pulsebench binary and through "pulsetranslator bench": each starts its
// log server and baseline worker as itself, and every output arrives.
func TestTheBinariesRunTheirWorkers(t *testing.T) {
	brokertest.Require(t)
	dir := t.TempDir()
	translatorBinary := buildTranslator(t)
	pulsebench := filepath.Join(dir, "pulsebench")
	if out, err := exec.Command("go", "build", "-o", pulsebench, "../../../cmd/pulsebench").CombinedOutput(); err != nil {
		t.Fatalf("go build ../../../cmd/pulsebench: %v\n%s", err, out)
	}
	for _, argv := range [][]string{{pulsebench}, {translatorBinary, Command}} {
		client := "pulsebench-binary-" + strconv.Itoa(len(argv))
		args := append(argv[1:], "-broker", brokertest.AdminURL(), "-translator", translatorBinary, "-corpus", corpusDir,
			"-client", client, "-n", "60", "-runs", "1", "-warmup=false", "-timeout", "2m")
		out, err := exec.Command(argv[0], args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "translator / baseline:") {
			t.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
}
