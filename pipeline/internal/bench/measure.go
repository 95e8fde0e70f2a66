package bench

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// headerIndex carries an input's index in the stream, so that the baseline
// worker finds its outputs; the translator ignores it.
const headerIndex = "x-pulsebench-index"

// result is one measured run.
type result struct {
	name string
	// inputs and outputs counted; elapsed from the first publish (or the
	// consumers' start, with --preload) to the last expected output.
	inputs, outputs int
	elapsed         time.Duration
	// p50 and p99 are the latencies from an input's publish to each of its
	// outputs' arrival.
	p50, p99 time.Duration
	// peakRSS is the largest peak resident set of the translator
	// processes; 0 for the baseline.
	peakRSS          int64
	lost, duplicates int
	// parked counts the inputs in the worker's dead queue after the run:
	// the refused inputs of the stream, or something is wrong.
	parked int
	// CPU time used over the run by the broker (when it runs on this
	// machine), by the worker processes (the translator replicas, or the
	// bare baseline worker), by pulsebench itself (its publisher and
	// probe), and by the log server, which stands for a remote host: on
	// shared CPUs its time is taken from the others.
	brokerCPU, workerCPU, benchCPU, logsCPU time.Duration
}

func (r result) rate() float64 { return float64(r.inputs) / r.elapsed.Seconds() }

// perInput is a CPU time per input message, in milliseconds.
func (r result) perInput(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond) / float64(r.inputs)
}

// publisher sends the stream upstream with confirms.
type publisher struct {
	ch       *amqp.Channel
	exchange string
}

// publish sends every input, up to 256 confirms outstanding, and returns
// each input's publish time.
func (p *publisher) publish(s *stream) ([]time.Time, error) {
	sent := make([]time.Time, len(s.bodies))
	pending := make([]*amqp.DeferredConfirmation, 0, 256)
	flush := func() error {
		for _, dc := range pending {
			if !dc.Wait() {
				return fmt.Errorf("the broker nacked an upstream publish")
			}
		}
		pending = pending[:0]
		return nil
	}
	for i, body := range s.bodies {
		sent[i] = time.Now()
		dc, err := p.ch.PublishWithDeferredConfirm(p.exchange, s.keys[i], false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
			Headers: amqp.Table{headerIndex: strconv.Itoa(i)},
		})
		if err != nil {
			return nil, err
		}
		if pending = append(pending, dc); len(pending) == cap(pending) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return sent, flush()
}

// probe consumes the output exchange and matches arrivals to the stream.
type probe struct {
	deliveries <-chan amqp.Delivery
}

func newProbe(ch *amqp.Channel, exchange string) (*probe, error) {
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return nil, err
	}
	if err := ch.QueueBind(q.Name, "#", exchange, false, nil); err != nil {
		return nil, err
	}
	if err := ch.Qos(2000, 0, false); err != nil {
		return nil, err
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return nil, err
	}
	return &probe{deliveries: d}, nil
}

// collect waits for every expected output, then lingers a moment for
// duplicates. It gives up at the timeout, or as soon as stopped is closed
// (a worker process exited) or the deliveries end (the connection was
// lost), and says which. sent returns the inputs' publish times; from is
// when the clock started.
func (p *probe) collect(s *stream, sent func() []time.Time, from time.Time, timeout time.Duration, stopped <-chan struct{}) (result, error) {
	seen := make(map[string]int, s.total)
	arrived := make(map[string]time.Time, s.total)
	var last time.Time
	var err error
	deadline := time.After(timeout)
	linger := (<-chan time.Time)(nil)
wait:
	for {
		if linger == nil && len(seen) == s.total {
			// Duplicates of at-least-once arrive shortly after.
			linger = time.After(time.Second)
		}
		select {
		case d, ok := <-p.deliveries:
			if !ok {
				err = errors.New("the connection to the broker was lost while outputs were expected")
				break wait
			}
			if _, ok := s.input[d.MessageId]; !ok {
				continue
			}
			if seen[d.MessageId]++; seen[d.MessageId] == 1 {
				last = time.Now()
				arrived[d.MessageId] = last
			}
		case <-stopped:
			err = errors.New("a worker process exited while outputs were expected")
			break wait
		case <-linger:
			break wait
		case <-deadline:
			break wait
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	r := result{inputs: len(s.bodies), outputs: len(seen), elapsed: last.Sub(from), lost: s.total - len(seen)}
	for _, n := range seen {
		r.duplicates += n - 1
	}
	if err != nil {
		return r, err
	}
	times := sent()
	latencies := make([]time.Duration, 0, len(arrived))
	for id, at := range arrived {
		latencies = append(latencies, at.Sub(times[s.input[id]]))
	}
	r.p50, r.p99 = percentiles(latencies)
	return r, nil
}

// percentiles returns the 50th and 99th percentiles of ds (nearest rank
// below), sorting ds; zero when ds is empty.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

// anyStopped returns a channel closed when the first of procs exits.
func anyStopped(procs ...*workerProcess) <-chan struct{} {
	stopped := make(chan struct{})
	var once sync.Once
	for _, p := range procs {
		go func() {
			<-p.done
			once.Do(func() { close(stopped) })
		}()
	}
	return stopped
}

// sentTimes holds the publish times once the publisher is done.
type sentTimes struct {
	mu    sync.Mutex
	times []time.Time
	done  chan struct{}
	err   error
}

func (s *sentTimes) get() []time.Time {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.times
}

// failure waits for the publisher and returns why it failed, or nil.
func (s *sentTimes) failure() error {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
