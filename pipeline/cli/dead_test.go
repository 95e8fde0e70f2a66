package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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
	listParked(&list, []deadqueue.Parked{p})
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
