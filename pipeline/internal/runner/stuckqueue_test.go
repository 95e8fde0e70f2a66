package runner_test

import (
	"bytes"
	"errors"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// answerWithin is how long a queue of the local broker may take to answer
// a passive declare before the tests take it for stuck.
const answerWithin = 15 * time.Second

// inspectWithin is inspect that gives up after limit.
func (w *world) inspectWithin(queue string, limit time.Duration) (amqp.Queue, error) {
	return broker.Within(limit, func() (amqp.Queue, error) { return w.inspect(queue) })
}

// maxRescues bounds the broker restarts one test may make.
const maxRescues = 2

// rescueStuckQueue restarts the world's own node, as an operator would, when
// the pipeline's input queue does not answer. RabbitMQ 3.10 can leave a
// classic queue, after stop_app/start_app, waiting forever for its
// message store to answer a read: the queue's process never answers again,
// nothing is delivered, and deleting the queue hangs. That is the
// broker's fault, not the translator's, and the translator's duty, to
// lose nothing, still holds across the restart. A queue that answers is
// left alone: a pipeline that stalls with a healthy broker fails its test.
// The shared broker, and a cluster, are never restarted.
func (w *world) rescueStuckQueue() {
	w.t.Helper()
	if w.own == nil || len(w.own.names) > 1 || w.rescues >= maxRescues {
		return
	}
	input := pulse.InputQueue(w.client, "build")
	if _, err := w.inspectWithin(input, answerWithin); !errors.Is(err, broker.ErrNoAnswer) {
		return
	}
	w.rescues++
	w.t.Logf("the broker's queue %s has not answered for %s: restarting the broker (rabbitmqctl stop_app, start_app), rescue %d of %d", input, answerWithin, w.rescues, maxRescues)
	w.restartBroker(0)
}

// restartBroker stops the RabbitMQ application of the world's own node, waits
// pause, starts it again, and dials the world's admin channel anew.
func (w *world) restartBroker(pause time.Duration) {
	w.t.Helper()
	w.stopBrokerApp()
	time.Sleep(pause)
	if out, err := w.ctlCommand("start_app").CombinedOutput(); err != nil {
		w.t.Fatalf("rabbitmqctl start_app: %v\n%s", err, out)
	}
	w.redial()
}

// stopAppWithin is how long rabbitmqctl stop_app may take before the
// tests look for a queue that holds it up.
const stopAppWithin = 30 * time.Second

// stopBrokerApp runs rabbitmqctl stop_app. A classic queue stuck reading
// its message store (the RabbitMQ 3.10 fault above) never ends when asked
// to, and stop_app waits for it (seen for over six minutes): after
// stopAppWithin, the processes of the queues still running are killed, as
// an operator would, and their messages are recovered from disk when the
// application starts again.
func (w *world) stopBrokerApp() {
	w.t.Helper()
	stop := w.ctlCommand("stop_app")
	var out bytes.Buffer
	stop.Stdout, stop.Stderr = &out, &out
	if err := stop.Start(); err != nil {
		w.t.Fatalf("rabbitmqctl stop_app: %v", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop.Wait() }()
	select {
	case err := <-stopped:
		if err != nil {
			w.t.Fatalf("rabbitmqctl stop_app: %v\n%s", err, &out)
		}
		return
	case <-time.After(stopAppWithin):
	}
	killed, err := w.ctlCommand("eval", killStuckQueues).CombinedOutput()
	w.t.Logf("rabbitmqctl stop_app has waited %s for the broker's queues to end: killed the processes of the classic queues still running (stuck, as RabbitMQ 3.10 leaves one reading its message store), as an operator would: %s %v",
		stopAppWithin, strings.TrimSpace(string(killed)), err)
	select {
	case err := <-stopped:
		if err != nil {
			w.t.Fatalf("rabbitmqctl stop_app: %v\n%s", err, &out)
		}
	case <-time.After(2 * time.Minute):
		w.t.Fatalf("rabbitmqctl stop_app has not returned in %s (the broker may be half stopped: rabbitmqctl start_app)", stopAppWithin+2*time.Minute)
	}
}

// killStuckQueues is an Erlang expression for rabbitmqctl eval: it kills
// the process of every classic queue still running (once stop_app has
// waited stopAppWithin, only a stuck one is), and gives their names.
const killStuckQueues = `[begin exit(P, kill), element(4, Name) end || P <- erlang:processes(), ` +
	`{dictionary, D} <- [erlang:process_info(P, dictionary)], ` +
	`{rabbit_amqqueue_process, Name} <- [proplists:get_value(process_name, D)]].`
