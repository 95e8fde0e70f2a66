package cli

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestDemo runs the demo twice at once on the local broker, as two
// newcomers would on a shared machine, while a queue of someone else's
// listens on exchange/build/. Each run accounts for its own messages only
// (eleven outputs, one of them after waiting for its log, one refusal
// parked, one drop) and exits; none of its raw messages reaches the
// shared exchange; and each leaves none of its queues behind.
func TestDemo(t *testing.T) {
	conn := brokertest.Connect(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("exchange/build/", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	others, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(others.Name, "#", "exchange/build/", false, nil); err != nil {
		t.Fatal(err)
	}

	outs := make([]bytes.Buffer, 2)
	errs := make([]bytes.Buffer, 2)
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			codes[i] = Main([]string{"demo", "--exit", "--http", "127.0.0.1:0", "--connection", brokertest.AdminURL(), "--late", "2s"}, &outs[i], &errs[i])
		})
	}
	wg.Wait()
	clients := map[string]bool{}
	for i, code := range codes {
		out := outs[i].String()
		if code != 0 {
			t.Fatalf("demo %d exited %d\nstdout:\n%s\nstderr:\n%s", i, code, out, errs[i].String())
		}
		for _, want := range []string{
			"live    http://127.0.0.1:",
			"out      build.mozilla-central.linux64.opt.mozilla-central-linux64",
			"waiting  a build's log is not there yet",
			"out      build.mozilla-central.win32.opt.mozilla-central-win32",
			"parked   no_build_url:",
			"dropped  a duplicate .finished notice",
			"5 raw messages gave 11 outputs; 1 parked",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("demo %d's output lacks %q", i, want)
			}
		}
		if n := strings.Count(out, "\n  out "); n != 11 {
			t.Errorf("demo %d shows %d outputs; want its own 11", i, n)
		}
		if strings.Contains(out, ":guest@") {
			t.Errorf("demo %d shows the password", i)
		}
		var client string
		if _, err := fmt.Sscanf(out[strings.Index(out, "as the client ")+len("as the client "):], "%s", &client); err != nil {
			t.Fatalf("demo %d does not name its client id: %v", i, err)
		}
		client = strings.TrimSuffix(client, ":")
		clients[client] = true
		for _, q := range []string{"queue/" + client + "/build", "queue/" + client + "/build/dead", "queue/" + client + "/build/wait/3s"} {
			if brokertest.QueueExists(t, conn, q) {
				t.Errorf("demo %d left %s behind", i, q)
			}
		}
		if t.Failed() {
			t.Logf("demo %d stdout:\n%s\nstderr:\n%s", i, out, errs[i].String())
		}
	}
	if len(clients) != 2 {
		t.Errorf("the two runs used the client ids %v; want one each", clients)
	}
	select {
	case d := <-mustConsume(t, ch, others.Name):
		t.Errorf("a demo published %s to the shared exchange/build/", d.RoutingKey)
	case <-time.After(200 * time.Millisecond):
	}
}

func mustConsume(t *testing.T, ch *amqp.Channel, queue string) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
