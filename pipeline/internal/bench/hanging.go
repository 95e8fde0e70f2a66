package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The hanging-host benchmark (-hanging-rate): what a log host that
// accepts connections and never answers costs the other messages. It
// publishes messages whose logs are on the local log server at a steady
// rate (-steady-rate) for -duration, with, in a second run, messages
// whose logs are on a host that hangs at -hanging-rate beside them, and
// reports the latency of the steady messages in both runs: the hanging
// messages must cost only themselves.

// hangingHost accepts connections and never answers, until closed.
type hangingHost struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newHangingHost() (*hangingHost, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hangingHost{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

func (h *hangingHost) url() string { return "http://" + h.ln.Addr().String() }

func (h *hangingHost) close() {
	_ = h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
}

// steadyResult is one run of the hanging-host benchmark.
type steadyResult struct {
	hangingRate        int
	steadyOutputs      int
	lost               int
	p50, p99, max      time.Duration
	hangingPublished   int
	hangingSent        int
	steadySent, rateOK int
}

// benchHanging runs the hanging-host benchmark: a run without hanging
// messages, then one with, each -runs times, and prints the latencies.
func benchHanging(o options, stdout io.Writer) error {
	translatorPath, err := filepath.Abs(o.translator)
	if _, statErr := os.Stat(translatorPath); err != nil || statErr != nil {
		return fmt.Errorf("-translator %s: build it first (go build -o /tmp/pulsetranslator ./cmd/pulsetranslator)", o.translator)
	}
	logs, err := startLogServer("")
	if err != nil {
		return err
	}
	defer logs.stop()
	hanging, err := newHangingHost()
	if err != nil {
		return err
	}
	defer hanging.close()
	o.gate, o.gateURL, o.logServerPID = true, logs.url, logs.proc.cmd.Process.Pid
	steadyN := int(float64(o.steadyRate) * o.duration.Seconds())
	hangN := int(float64(o.hangingRate) * o.duration.Seconds())
	o.n = steadyN + hangN
	su, err := prepare(o, stdout)
	if err != nil {
		return err
	}
	defer su.cleanup()
	cfg, err := config.Load(su.configPath)
	if err != nil {
		return err
	}
	// The same corpus messages, each with its logs on the hanging host.
	hangStream, err := newStream(cfg, o.corpus, o.mix, steadyN+hangN, hanging.url())
	if err != nil {
		return err
	}
	conn, err := dialAny(o.broker)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := declare(conn, su.nm, o.n, o.queueType); err != nil {
		return err
	}
	forget := interrupted.add(func() { cleanup(conn, su.nm) })
	defer func() { forget(); cleanup(conn, su.nm) }()
	fmt.Fprintf(stdout, "steady messages at %d/s for %s (logs answered at once); hanging messages at %d/s beside them in the second run of each pair (their log host accepts and never answers)\n",
		o.steadyRate, o.duration, o.hangingRate)
	var without, with []steadyResult
	for run := 1; run <= o.runs; run++ {
		for _, rate := range pairOrder(run, 0, o.hangingRate) {
			r, err := runSteady(conn, o, su, hangStream, translatorPath, rate)
			if err != nil {
				return err
			}
			printSteady(stdout, run, r)
			if rate == 0 {
				without = append(without, r)
			} else {
				with = append(with, r)
			}
		}
	}
	med := func(rs []steadyResult, f func(steadyResult) time.Duration) time.Duration {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = float64(f(r))
		}
		return time.Duration(medianOf(v))
	}
	for _, side := range []struct {
		name string
		rs   []steadyResult
	}{{"without hanging messages", without}, {fmt.Sprintf("with %d/s hanging", o.hangingRate), with}} {
		fmt.Fprintf(stdout, "median of %d runs, %s: steady messages' latency p50 %s, p99 %s, max %s\n", len(side.rs), side.name,
			med(side.rs, func(r steadyResult) time.Duration { return r.p50 }).Round(time.Millisecond),
			med(side.rs, func(r steadyResult) time.Duration { return r.p99 }).Round(time.Millisecond),
			med(side.rs, func(r steadyResult) time.Duration { return r.max }).Round(time.Millisecond))
	}
	return nil
}

func printSteady(w io.Writer, run int, r steadyResult) {
	fmt.Fprintf(w, "run %d, hanging %3d/s: %d steady sent (%d on time), %d outputs, lost %d; latency p50 %-8s p99 %-8s max %-8s; hanging sent %d, published %d\n",
		run, r.hangingRate, r.steadySent, r.rateOK, r.steadyOutputs, r.lost, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond),
		r.hangingSent, r.hangingPublished)
}

// runSteady runs one translator on fresh queues and publishes the steady
// stream at -steady-rate and, when hangingRate > 0, hanging messages at
// that rate beside it, then collects the steady outputs.
func runSteady(conn *amqp.Connection, o options, su *setup, hang *stream, binary string, hangingRate int) (steadyResult, error) {
	nm := su.nm
	cleanup(conn, nm)
	if err := declare(conn, nm, o.n, o.queueType); err != nil {
		return steadyResult{}, err
	}
	proc, err := startWorker("", o.workerEnv(), binary, "run", "--config", su.configPath, "--log-level", "warn")
	if err != nil {
		return steadyResult{}, err
	}
	defer proc.stop()
	if err := waitConsumers(conn, nm.input, []*workerProcess{proc}, o.consumers); err != nil {
		return steadyResult{}, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return steadyResult{}, err
	}
	defer ch.Close()
	p, err := newProbe(ch, nm.output)
	if err != nil {
		return steadyResult{}, err
	}
	pub, err := conn.Channel()
	if err != nil {
		return steadyResult{}, err
	}
	defer pub.Close()
	if err := pub.Confirm(false); err != nil {
		return steadyResult{}, err
	}
	steady := su.stream
	steadyN := int(float64(o.steadyRate) * o.duration.Seconds())
	hangN := int(float64(hangingRate) * o.duration.Seconds())
	sent := make([]time.Time, steadyN)
	var pending []*amqp.DeferredConfirmation
	publish := func(s *stream, i int) error {
		dc, err := pub.PublishWithDeferredConfirm(nm.upstream, s.keys[i], false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: s.bodies[i],
			Headers: amqp.Table{headerIndex: strconv.Itoa(i)},
		})
		pending = append(pending, dc)
		return err
	}
	r := steadyResult{hangingRate: hangingRate}
	// The outputs are collected as they arrive, while the inputs go out.
	want := map[string]int{}
	for i := range steadyN {
		for _, out := range steady.outputs[i] {
			want[out.id] = i
		}
	}
	hanging := map[string]bool{}
	for j := range hangN {
		for _, out := range hang.outputs[steadyN+j] {
			hanging[out.id] = true
		}
	}
	var mu sync.Mutex // sent[i] is written before input i goes out
	var latencies []time.Duration
	seen := map[string]bool{}
	stopCollect := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case d := <-p.deliveries:
				at := time.Now()
				if i, ok := want[d.MessageId]; ok && !seen[d.MessageId] {
					seen[d.MessageId] = true
					mu.Lock()
					latencies = append(latencies, at.Sub(sent[i]))
					mu.Unlock()
				} else if hanging[d.MessageId] {
					r.hangingPublished++
				}
				if len(seen) == len(want) {
					return
				}
			case <-stopCollect:
				return
			}
		}
	}()
	began := time.Now()
	// Each steady message i is due at i/steadyRate, each hanging one j at
	// j/hangingRate; whichever is due first goes next.
	for i, j := 0, 0; i < steadyN || j < hangN; {
		dueI, dueJ := time.Duration(1<<62), time.Duration(1<<62)
		if i < steadyN {
			dueI = time.Duration(float64(i) / float64(o.steadyRate) * float64(time.Second))
		}
		if j < hangN {
			dueJ = time.Duration(float64(j) / float64(hangingRate) * float64(time.Second))
		}
		due := min(dueI, dueJ)
		if wait := due - time.Since(began); wait > 0 {
			time.Sleep(wait)
		}
		if dueI <= dueJ {
			mu.Lock()
			sent[i] = time.Now()
			mu.Unlock()
			if sent[i].Sub(began)-due < 50*time.Millisecond {
				r.rateOK++
			}
			if err := publish(steady, i); err != nil {
				return r, err
			}
			i++
		} else {
			// The hanging stream's inputs are numbered after the steady
			// ones, so that no body repeats one of the steady stream.
			if err := publish(hang, steadyN+j); err != nil {
				return r, err
			}
			j++
		}
	}
	r.steadySent, r.hangingSent = steadyN, hangN
	for _, dc := range pending {
		if !dc.Wait() {
			close(stopCollect)
			return r, fmt.Errorf("the broker nacked an upstream publish")
		}
	}
	select {
	case <-collected:
	case <-time.After(30 * time.Second):
		close(stopCollect)
		<-collected
	}
	slices.Sort(latencies)
	r.steadyOutputs, r.lost = len(seen), len(want)-len(seen)
	r.p50, r.p99 = percentiles(latencies)
	if len(latencies) > 0 {
		r.max = latencies[len(latencies)-1]
	}
	return r, nil
}
