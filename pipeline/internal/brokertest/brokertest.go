// Package brokertest helps tests that need the real RabbitMQ, a Debian
// tool (DebianTool) or a host of their own on a loopback port (ServeTCP):
// it finds the broker (failing, not skipping, with CI=true) and makes
// users with exactly the Pulse permissions of a client id.
package brokertest

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AdminURL is the broker the tests use: PULSE_TEST_CONNECTION, or the
// local broker as guest.
func AdminURL() string {
	if u := os.Getenv("PULSE_TEST_CONNECTION"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// Require skips the test when there is no broker, or fails it with CI=true.
func Require(t testing.TB) {
	t.Helper()
	dial(t).Close()
}

// Connect connects to the broker as AdminURL's user, closed when the test
// ends; with no broker it skips the test, or fails it with CI=true.
func Connect(t testing.TB) *amqp.Connection {
	t.Helper()
	conn := dial(t)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dial(t testing.TB) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(AdminURL())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no RabbitMQ (CI=true, so this fails instead of skipping): %v", err)
		}
		t.Skipf("no RabbitMQ: %v (run deploy/local/test.sh to start one)", err)
	}
	return conn
}

// PulseUser creates a user named client with exactly the Pulse permissions
// of that client id (configure and write ^(exchange|queue)/<client>/.*, read
// ^(exchange/.*|queue/<client>/.*)) and a password that needs URL-encoding,
// deletes it when the test ends, and returns its connection string. It
// needs rabbitmqctl, run as root.
func PulseUser(t testing.TB, client string) string {
	t.Helper()
	return PulseUserWriting(t, client, fmt.Sprintf("^(exchange|queue)/%s/.*", client))
}

// PulseUserWriting is PulseUser with the write permission write, a regular
// expression of RabbitMQ's (Erlang's re, which has lookahead): for a test
// of what the translator does when the broker refuses a publish.
func PulseUserWriting(t testing.TB, client, write string) string {
	t.Helper()
	password := "p/w@" + client
	own := fmt.Sprintf("^(exchange|queue)/%s/.*", client)
	read := fmt.Sprintf("^(exchange/.*|queue/%s/.*)", client)
	for _, args := range [][]string{{"add_user", client, password}, {"set_permissions", "-p", "/", client, own, write, read}} {
		if out, err := exec.Command("rabbitmqctl", args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s (the test needs rabbitmqctl, run as root)", args[0], err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "delete_user", client).Run() })
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(client, password)
	return u.String()
}

// SuspendQueue suspends the process of queue (in the vhost /) on the
// local broker for at most limit, as RabbitMQ can leave a queue that no
// longer answers, and resumes it when resume is called or the test ends:
// a process of the broker's own holds the suspension and ends at the stop
// message.
func SuspendQueue(t testing.TB, queue string, limit time.Duration) (resume func()) {
	t.Helper()
	// A name of its own: tests of several packages may suspend queues at
	// once.
	holder := "pulsetranslator_test_suspender_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	expr := `{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + queue + `">>)), P = amqqueue:get_pid(Q), ` +
		`register(` + holder + `, spawn(fun() -> erlang:suspend_process(P), receive stop -> ok after ` + strconv.FormatInt(limit.Milliseconds(), 10) + ` -> ok end end)), ok.`
	if out, err := exec.Command("rabbitmqctl", "eval", expr).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("rabbitmqctl eval (suspend %s): %v\n%s", queue, err, out)
	}
	resume = func() {
		_ = exec.Command("rabbitmqctl", "eval", `catch `+holder+` ! stop, ok.`).Run()
	}
	t.Cleanup(resume)
	return resume
}

// CloseConsumerChannel makes the local broker close the channel of the
// first consumer of queue (in the vhost /), as it closes a channel whose
// consumer did not ack in time (consumer_timeout): the channel process is
// handed an ack of a delivery tag it never sent, and closes the channel
// with PRECONDITION_FAILED. The connection and its other channels stay
// open. It returns the tag of the consumer whose channel closed.
func CloseConsumerChannel(t testing.TB, queue string) string {
	t.Helper()
	expr := `{ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"` + queue + `">>)), ` +
		`C = hd(rabbit_amqqueue:consumers(Q)), ` +
		`gen_server2:cast(element(1, C), {method, {'basic.ack', 4294967295, false}, none, noflow}), ` +
		`io:format("tag=~s~n", [element(2, C)]), ok.`
	out, err := exec.Command("rabbitmqctl", "-q", "eval", expr).CombinedOutput()
	_, tag, found := strings.Cut(string(out), "tag=")
	if err != nil || !found {
		t.Fatalf("rabbitmqctl eval (close a consumer's channel of %s): %v\n%s", queue, err, out)
	}
	tag, _, _ = strings.Cut(tag, "\n")
	return tag
}

// QueueExists reports whether queue exists on the broker, asking on a
// channel of its own (the broker closes a channel that asks for a queue
// that does not exist).
func QueueExists(t testing.TB, conn *amqp.Connection, queue string) bool {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return false
	}
	if err != nil {
		t.Fatalf("is there a queue %s: %v", queue, err)
	}
	return true
}

// UniqueName is name with a suffix of this moment's, for a queue or an
// exchange of one test's own: two runs of a suite on one broker, or a
// suite beside a running pipeline, never share one.
func UniqueName(name string) string {
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1e12)
}

// DeleteQueueAtEnd deletes queue, as the admin user, when the test ends:
// for a queue a test declares beside its world's (a consumer's, another
// client's), which would otherwise stay on the shared broker.
func DeleteQueueAtEnd(t testing.TB, queue string) {
	atEnd(t, func(ch *amqp.Channel) { _, _ = ch.QueueDelete(queue, false, false, false) })
}

// DeleteExchangeAtEnd is DeleteQueueAtEnd for an exchange.
func DeleteExchangeAtEnd(t testing.TB, exchange string) {
	atEnd(t, func(ch *amqp.Channel) { _ = ch.ExchangeDelete(exchange, false, false) })
}

// atEnd runs do on a channel of the admin user's when the test ends.
func atEnd(t testing.TB, do func(*amqp.Channel)) {
	t.Cleanup(func() {
		conn, err := amqp.Dial(AdminURL())
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			do(ch)
		}
	})
}
