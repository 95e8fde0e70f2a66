package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// TestTail follows a pipeline's output exchange as a Pulse user, through
// its own auto-delete queue, and prints JSON lines with the routing key
// split into the reference's fields.
func TestTail(t *testing.T) {
	brokertest.Require(t)
	client := fmt.Sprintf("tailtest-%d", time.Now().UnixNano()%1e9)
	user := brokertest.PulseUser(t, client)
	config := filepath.Join(t.TempDir(), "c.yaml")
	text := fmt.Sprintf("client_id: %s\nconnection: %s\npipelines:\n  - name: build\n    translator: buildbot\n    bindings: [{exchange: exchange/build/, routing_keys: ['#']}]\n    outputs: [{exchange: build/normalized}]\n    rules: [builtin:buildbot.yaml]\n", client, user)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	exchange := "exchange/" + client + "/build/normalized"
	conn, err := amqp.Dial(user)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))

	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- tailCommand(context.Background(), Program{}, []string{"--config", config, "--count", "2"}, &out, &errOut)
	}()
	build := "build.mozilla-central.linux64.opt.mozilla-central-linux64"
	publish := func(key string) {
		if err := ch.Publish(exchange, key, true, false, amqp.Publishing{Body: []byte(`{"payload": {"tree": "mozilla-central"}}`),
			Headers: amqp.Table{"CC": []interface{}{"route.tree.mozilla-central"}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Until the tail's queue is bound, the broker returns the message.
	for deadline := time.Now().Add(15 * time.Second); ; {
		publish(build)
		select {
		case <-returns:
			if time.Now().After(deadline) {
				t.Fatalf("the tail's queue was never bound: %s", errOut.String())
			}
			time.Sleep(100 * time.Millisecond)
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
	publish("something.else")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("pulsetail did not print 2 messages within 15s")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), out.String())
	}
	var first, second tailLine
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first.RoutingKey != build || first.Kind != "build" || first.Fields["tree"] != "mozilla-central" || first.Fields["platform"] != "linux64" ||
		first.Fields["builder"] != "mozilla-central-linux64" || len(first.CC) != 1 {
		t.Errorf("first line %s: want the build's fields and CC", lines[0])
	}
	if second.RoutingKey != "something.else" || second.Fields != nil {
		t.Errorf("second line %s: want no fields for a key no entry fits", lines[1])
	}
}

// TestPrettyObeysNoEscapes prints a delivery, as on a terminal, whose
// routing key, message id, CC routes and body carry terminal escape
// sequences: pulsetail can follow any exchange, raw ones included, and
// what it prints spells them out instead of passing them to the terminal.
func TestPrettyObeysNoEscapes(t *testing.T) {
	d := amqp.Delivery{
		RoutingKey: "build.\x1b]0;owned\x07.x",
		MessageId:  "id\r",
		Headers:    amqp.Table{"CC": []interface{}{"route.\u202eevil"}},
		Body:       []byte(`{"builder": "linux` + "\u009b" + `2J"}`),
	}
	var out bytes.Buffer
	printPretty(&out, describeDelivery(d, nil))
	printPretty(&out, describeDelivery(amqp.Delivery{RoutingKey: "k", Body: []byte("not json \u009b2J")}, nil))
	for _, c := range []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"} {
		if strings.Contains(out.String(), c) {
			t.Errorf("printed %q raw:\n%q", c, out.String())
		}
	}
	for _, want := range []string{`"build.\x1b]0;owned\a.x"`, `"route.\u202eevil"`, `"builder": "linux\u009b2J"`, `"not json \u009b2J"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed no %s:\n%s", want, out.String())
		}
	}
}
