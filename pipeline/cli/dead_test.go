package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/deadqueue"
)

// terminalControls are what a terminal would obey: ESC (window title,
// colours, clearing the screen), BEL, carriage return, the 8-bit CSI and
// a bidirectional override.
var terminalControls = []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"}

// TestDeadOutputObeysNoUpstreamEscapes lists and shows a parked message
// whose routing key, reason, headers and body carry terminal escape
// sequences, as a hostile upstream message may: the operator's terminal
// gets them spelled out, never raw, and the rest as it was.
func TestDeadOutputObeysNoUpstreamEscapes(t *testing.T) {
	const title = "\x1b]0;owned\x07"
	p := deadqueue.Parked{
		Position:         1,
		Class:            "malformed_json",
		Reason:           "the body is not JSON: " + title + strings.Repeat("é", 60) + "\u202eevil",
		SourceExchange:   "exchange/build/",
		SourceRoutingKey: "build." + title + ".log_uploaded\r",
		ParkedAt:         time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
		Delivery: amqp.Delivery{
			Headers: amqp.Table{"x-evil\x1b[2J": "\u009b31mred", "list": []interface{}{"a\x07"}},
			Body:    []byte(`{"builder": "linux` + "\u009b" + `2J", "n": 1}`),
		},
	}
	var list, show bytes.Buffer
	listParked(&list, []deadqueue.Parked{p}, 1)
	showParked(&show, p)
	for name, out := range map[string]string{"list": list.String(), "show": show.String()} {
		for _, c := range terminalControls {
			if strings.Contains(out, c) {
				t.Errorf("dead %s writes %q raw:\n%q", name, c, out)
			}
		}
		if !strings.Contains(out, `\x1b]0;owned\a`) {
			t.Errorf("dead %s does not spell out the escape:\n%s", name, out)
		}
	}
	if !strings.Contains(list.String(), "malformed_json") || !strings.Contains(list.String(), "éé…") {
		t.Errorf("dead list lost the class, or cut the reason inside a rune:\n%s", list.String())
	}
	for _, want := range []string{`"x-evil\x1b[2J": "\u009b31mred"`, `"builder": "linux\u009b2J"`, `"n": 1`} {
		if !strings.Contains(show.String(), want) {
			t.Errorf("dead show lacks %s:\n%s", want, show.String())
		}
	}
}

// TestDeadListCountsFirst: the list starts with how many messages the
// dead queue holds and how many of those read are of each class, most
// first, and says when --limit left some out.
func TestDeadListCountsFirst(t *testing.T) {
	var parked []deadqueue.Parked
	for i, class := range []string{"schema", "no_build_url", "schema", "rule:drop", "schema"} {
		parked = append(parked, deadqueue.Parked{Position: i + 1, Class: class, Reason: "why"})
	}
	var out bytes.Buffer
	listParked(&out, parked, 1426)
	text := out.String()
	for _, want := range []string{"1426 parked messages; the first 5 (--limit) by class:", "3  schema\n", "1  no_build_url", "1421 more not shown: --limit 1426 reads them all"} {
		if !strings.Contains(text, want) {
			t.Errorf("dead list lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "schema") > strings.Index(text, "no_build_url") {
		t.Errorf("the classes are not most first:\n%s", text)
	}
	out.Reset()
	listParked(&out, parked, 5)
	if !strings.HasPrefix(out.String(), "5 parked messages, by class:") || strings.Contains(out.String(), "more not shown") {
		t.Errorf("a whole dead queue:\n%s", out.String())
	}
}

// TestMissingQueueExplainsItself: dead list and tail, with a config whose
// pipeline never ran on the broker, say what is missing, what names it
// (the client id, from which config) and what to do, instead of the
// broker's bare 404.
func TestMissingQueueExplainsItself(t *testing.T) {
	brokertest.Require(t)
	client := brokertest.UniqueName("pttest-never-ran")
	path := filepath.Join(t.TempDir(), "never.yaml")
	cfg := strings.Replace(string(config.DefaultYAML()), "client_id: pulsetranslator", "client_id: "+client, 1)
	t.Setenv(config.EnvConnection, brokertest.AdminURL())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dead", "list", "--config", path}, "the broker has no queue queue/" + client + "/build/dead"},
		{[]string{"tail", "--config", path, "--count", "1"}, "the broker has no exchange exchange/" + client + "/build/normalized"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(c.args, &stdout, &stderr)
		text := stderr.String()
		if code != 1 || !strings.Contains(text, c.want) || !strings.Contains(text, `client id "`+client+`"`) ||
			!strings.Contains(text, path) || !strings.Contains(text, "pulsetranslator run") || strings.Contains(text, "NOT_FOUND") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and an explanation", strings.Join(c.args[:2], " "), code, text)
		}
	}
}
