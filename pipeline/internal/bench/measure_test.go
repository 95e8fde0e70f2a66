package bench

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	amqp "github.com/rabbitmq/amqp091-go"
)

// smallStream is three inputs: the first gives outputs a and b, the second
// c, the third none.
func smallStream() *stream {
	return &stream{
		bodies: [][]byte{[]byte("0"), []byte("1"), []byte("2")},
		input:  map[string]int{"a": 0, "b": 0, "c": 1},
		total:  3,
	}
}

// deliver returns a probe whose deliveries are ids, in order, and the
// channel they come on.
func deliver(ids ...string) (*probe, chan amqp.Delivery) {
	ch := make(chan amqp.Delivery, len(ids))
	for _, id := range ids {
		ch <- amqp.Delivery{MessageId: id}
	}
	return &probe{deliveries: ch}, ch
}

func TestCollectCountsOutputsAndDuplicates(t *testing.T) {
	from := time.Now()
	sent := []time.Time{from, from.Add(time.Millisecond), from.Add(2 * time.Millisecond)}
	// An unrelated message, every output, and a duplicate of b.
	p, _ := deliver("other", "a", "b", "b", "c")
	r, err := p.collect(smallStream(), func() []time.Time { return sent }, from, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.inputs != 3 || r.outputs != 3 || r.lost != 0 || r.duplicates != 1 {
		t.Errorf("inputs %d, outputs %d, lost %d, duplicates %d; want 3, 3, 0, 1", r.inputs, r.outputs, r.lost, r.duplicates)
	}
	// The run ends at the last new output, not after the linger.
	if r.elapsed <= 0 || r.elapsed >= time.Second {
		t.Errorf("elapsed %s", r.elapsed)
	}
	if r.p50 <= 0 || r.p99 < r.p50 || r.p99 > r.elapsed {
		t.Errorf("p50 %s, p99 %s, elapsed %s", r.p50, r.p99, r.elapsed)
	}
}

func TestCollectCountsLostAtTheTimeout(t *testing.T) {
	p, _ := deliver("a", "c")
	start := time.Now()
	r, err := p.collect(smallStream(), func() []time.Time { return make([]time.Time, 3) }, start, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.outputs != 2 || r.lost != 1 || r.duplicates != 0 {
		t.Errorf("outputs %d, lost %d, duplicates %d; want 2, 1, 0", r.outputs, r.lost, r.duplicates)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("gave up after %s, before the timeout", waited)
	}
}

func TestCollectStopsWhenAWorkerExits(t *testing.T) {
	w, err := startWorker("", nil, "sh", "-c", "echo worker failed; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := deliver("a")
	start := time.Now()
	r, err := p.collect(smallStream(), func() []time.Time { return make([]time.Time, 3) }, start, time.Minute, anyStopped(w))
	if err == nil || !strings.Contains(err.Error(), "worker process exited") {
		t.Errorf("collect: %v", err)
	}
	if r.lost != 2 || time.Since(start) > 30*time.Second {
		t.Errorf("lost %d after %s", r.lost, time.Since(start))
	}
	if !strings.Contains(w.logs.String(), "worker failed") {
		t.Errorf("worker logs %q", w.logs.String())
	}
}

func TestCollectStopsWhenTheConnectionIsLost(t *testing.T) {
	p, ch := deliver("a")
	close(ch)
	if _, err := p.collect(smallStream(), func() []time.Time { return nil }, time.Now(), time.Minute, nil); err == nil || !strings.Contains(err.Error(), "connection") {
		t.Errorf("collect: %v", err)
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 200; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentiles(ds); p50 != 101*time.Millisecond || p99 != 199*time.Millisecond {
		t.Errorf("p50 %s, p99 %s of 1..200 ms", p50, p99)
	}
	if p50, p99 := percentiles(nil); p50 != 0 || p99 != 0 {
		t.Errorf("empty: %s %s", p50, p99)
	}
}

// ratesOf is one result per rate, in messages per second.
func ratesOf(rates ...int) []result {
	var out []result
	for _, r := range rates {
		out = append(out, result{inputs: r, elapsed: time.Second})
	}
	return out
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		rs   []result
		want float64
	}{{ratesOf(5), 5}, {ratesOf(9, 1, 5), 5}, {ratesOf(9, 1, 3, 5), 4}, {ratesOf(700, 742, 1100, 950, 1020), 950}} {
		if got := median(c.rs, result.rate); got != c.want {
			t.Errorf("median rate of %v: %v, want %v", c.rs, got, c.want)
		}
	}
}

func TestCPUTimeCountsThisProcess(t *testing.T) {
	before := cpuTime(os.Getpid())
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	// Ticks are 10 ms; 100 ms of spinning is at least a few.
	if used := cpuTime(os.Getpid()) - before; used < 30*time.Millisecond || used > 10*time.Second {
		t.Errorf("spinning 100 ms used %s of CPU", used)
	}
	if cpuTime(-1) != 0 {
		t.Error("a process that does not exist has a CPU time")
	}
}

func TestPeakRSSOfAWorker(t *testing.T) {
	w, err := startWorker("", nil, "sleep", "5")
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	time.Sleep(200 * time.Millisecond) // until the child has become sleep
	if rss := w.peakRSS(); rss < 100<<10 || rss > 1<<30 {
		t.Errorf("peak RSS of sleep: %d bytes", rss)
	}
}

func TestOptionsRefuseEmptyRuns(t *testing.T) {
	var stderr strings.Builder
	if code := Main([]string{"-runs", "0"}, os.Stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-runs 0: must be at least 1") {
		t.Errorf("-runs 0: exit %d, %q", code, stderr.String())
	}
}

func TestRunsAlternateWhichGoesFirst(t *testing.T) {
	var got []string
	for run := 1; run <= 4; run++ {
		got = append(got, pairOrder(run, "baseline", "translator")...)
	}
	want := "baseline translator translator baseline baseline translator translator baseline"
	if strings.Join(got, " ") != want {
		t.Errorf("order of four runs: %v", got)
	}
}

func TestPairedRatioIgnoresDrift(t *testing.T) {
	// The machine speeds up and slows down between runs; within each
	// run the two are close.
	base, ours := ratesOf(1000, 500, 800), ratesOf(900, 500, 900)
	ratio, each := pairedRatio(base, ours)
	if ratio != 1 || len(each) != 3 || each[0] != 0.9 || each[2] != 1.125 {
		t.Errorf("paired ratio %v of %v; want 1 of [0.9 1 1.125], where the ratio of medians is 1.125", ratio, each)
	}
}

func TestUndoListRunsNewestFirst(t *testing.T) {
	var u undoList
	var ran []string
	u.add(func() { ran = append(ran, "a") })
	forgetB := u.add(func() { ran = append(ran, "b") })
	u.add(func() { ran = append(ran, "c") })
	forgetB()
	u.run()
	u.run()
	if strings.Join(ran, "") != "ca" {
		t.Errorf("ran %v, want c then a, once each", ran)
	}
}

// TestCPUMeterCountsTheLogServer: a run's CPU report counts the log
// server's process, and nothing for it when there is none.
func TestCPUMeterCountsTheLogServer(t *testing.T) {
	busy := func() {
		for start := cpuTime(os.Getpid()); cpuTime(os.Getpid())-start < 100*time.Millisecond; {
			for i := 0; i < 1e6; i++ {
				_ = i * i
			}
		}
	}
	// This process stands in for the log server: its time is counted.
	m := startCPU(nil, os.Getpid())
	busy()
	if _, self, logs := m.stop(); logs < 90*time.Millisecond || self < 90*time.Millisecond {
		t.Errorf("the log server used %s and pulsebench %s, want at least 90ms each", logs, self)
	}
	m = startCPU(nil, 0)
	busy()
	if _, _, logs := m.stop(); logs != 0 {
		t.Errorf("with no log server its CPU reads %s, want 0", logs)
	}
}

// TestWorkersShareTheirEnvironment: both workers get the connection
// string in the environment, never on a command line, and -worker-env's
// runtime settings and nothing else: the runtime's own defaults unless
// told.
func TestWorkersShareTheirEnvironment(t *testing.T) {
	o := options{broker: "amqp://guest:guest@127.0.0.1:5672/"}
	if env := o.workerEnv(); len(env) != 1 || env[0] != config.EnvConnection+"="+o.broker {
		t.Errorf("no -worker-env: %q, want the connection string alone", env)
	}
	o.translatorEnv = envList{"GOMAXPROCS=1", "GOGC=400"}
	if env := o.workerEnv(); !slices.Contains(env, "GOMAXPROCS=1") || !slices.Contains(env, "GOGC=400") || len(env) != 3 {
		t.Errorf("-worker-env GOMAXPROCS=1 GOGC=400: %q", env)
	}
}
