package runner_test

import (
	"errors"
	"os/exec"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
)

// answerWithin is how long a queue of the local broker may take to answer
// a passive declare before the tests take it for stuck.
const answerWithin = 15 * time.Second

// errNoAnswer: the broker did not answer in time.
var errNoAnswer = errors.New("the broker did not answer")

// within runs ask and gives up after limit with errNoAnswer: a call to a
// queue whose process is stuck never returns, and would hold the test
// forever (the call goes on, and ends when the broker does).
func within[T any](limit time.Duration, ask func() (T, error)) (T, error) {
	type answer struct {
		v   T
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		v, err := ask()
		answered <- answer{v, err}
	}()
	select {
	case a := <-answered:
		return a.v, a.err
	case <-time.After(limit):
		var zero T
		return zero, errNoAnswer
	}
}

// inspectWithin is inspect that gives up after limit.
func (w *world) inspectWithin(queue string, limit time.Duration) (amqp.Queue, error) {
	return within(limit, func() (amqp.Queue, error) { return w.inspect(queue) })
}

// maxRescues bounds the broker restarts one test may make.
const maxRescues = 2

// rescueStuckQueue restarts the local broker, as an operator would, when
// the pipeline's input queue does not answer. RabbitMQ 3.10 can leave a
// classic queue, after stop_app/start_app, waiting forever for its
// message store to answer a read: the queue's process never answers again,
// nothing is delivered, and deleting the queue hangs. That is the
// broker's fault, not the translator's, and the translator's duty, to
// lose nothing, still holds across the restart. A queue that answers is
// left alone: a pipeline that stalls with a healthy broker fails its test.
func (w *world) rescueStuckQueue() {
	w.t.Helper()
	if len(w.nodes) > 0 || w.rescues >= maxRescues {
		return
	}
	input := pipeline.InputQueue(w.client, "build")
	if _, err := w.inspectWithin(input, answerWithin); !errors.Is(err, errNoAnswer) {
		return
	}
	w.rescues++
	w.t.Logf("the broker's queue %s has not answered for %s: restarting the broker (rabbitmqctl stop_app, start_app), rescue %d of %d", input, answerWithin, w.rescues, maxRescues)
	w.restartBroker(0)
}

// restartBroker stops the local broker's RabbitMQ application, waits
// pause, starts it again, and dials the world's admin channel anew.
func (w *world) restartBroker(pause time.Duration) {
	w.t.Helper()
	rabbitmqctl(w.t, "stop_app")
	time.Sleep(pause)
	if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
		w.t.Fatalf("rabbitmqctl start_app: %v\n%s (the broker is down: start it with rabbitmqctl start_app)", err, out)
	}
	w.redial()
}
