package broker

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// TestCarryHeadersCapsAndRenames: a copy carries each upstream header as
// it came, reserved names renamed, none over MaxCarriedHeader and no more
// than MaxCarriedHeaders in all, and says what it cut.
func TestCarryHeadersCapsAndRenames(t *testing.T) {
	routes := make([]interface{}, 0, 2000)
	for i := range 2000 {
		routes = append(routes, "route.steered."+strings.Repeat("x", 40)+string(rune('a'+i%26)))
	}
	upstream := amqp.Table{
		"CC":                        routes,
		"BCC":                       []interface{}{"route.hidden"},
		"x-death":                   []interface{}{amqp.Table{"reason": "expired"}},
		"x-pulse-exchange":          "exchange/forged/",
		"x-pulsetranslator-class":   "forged",
		"x-pulsetranslator-attempt": "99",
		"x-first-death-exchange":    "exchange/forged/",
		"publish.exchange":          "exchange/pulsetranslator/build/normalized",
		"small":                     int32(7),
		"when":                      time.Unix(1446634715, 0),
		"nested":                    amqp.Table{"a": []interface{}{int64(1), "b", nil}},
		"blob":                      []byte(strings.Repeat("y", MaxCarriedHeader)),
	}
	c := CarryHeaders(upstream)
	for name := range c.Headers {
		if pulse.Reserved(name) {
			t.Errorf("%s is carried under its own name", name)
		}
	}
	for _, name := range []string{"x-original-BCC", "x-original-x-death", "x-original-x-pulse-exchange", "x-original-x-pulsetranslator-class",
		"x-original-x-first-death-exchange", "publish.exchange", "small", "when", "nested"} {
		if _, ok := c.Headers[name]; !ok {
			t.Errorf("%s is not carried", name)
		}
	}
	for _, name := range []string{"x-original-CC", "blob"} {
		if _, ok := c.Headers[name]; ok {
			t.Errorf("%s (over %d bytes) is carried", name, MaxCarriedHeader)
		}
		if !strings.Contains(c.Cut, name+" (") {
			t.Errorf("the cut list %q does not name %s", c.Cut, name)
		}
	}
	if size := TableSize(c.Headers); size > MaxCarriedHeaders+5 {
		t.Errorf("the carried headers take %d bytes, over %d", size, MaxCarriedHeaders)
	}
	if err := c.Headers.Validate(); err != nil {
		t.Errorf("the carried headers are not a valid AMQP table: %v", err)
	}

	// Many middling headers: the smallest first, up to the total.
	many := amqp.Table{}
	for i := range 100 {
		many[strings.Repeat("k", 10)+string(rune('A'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", 1000)
	}
	c = CarryHeaders(many)
	if size := TableSize(c.Headers); size > MaxCarriedHeaders+5 || len(c.Headers) < 10 {
		t.Errorf("100 headers of 1 KB: %d carried in %d bytes; want as many as fit in %d", len(c.Headers), size, MaxCarriedHeaders)
	}
	if !strings.Contains(c.Cut, "and ") || !strings.Contains(c.Cut, " more") {
		t.Errorf("a long cut list is not shortened: %.200s", c.Cut)
	}
	if c := CarryHeaders(nil); c.Headers != nil || c.Cut != "" {
		t.Errorf("no headers carry %v, %q", c.Headers, c.Cut)
	}
}

// TestValueSizeOfEveryType holds the size estimate to AMQP 0-9-1's field
// encoding: a type byte, then the value (strings and byte arrays with a
// four-byte length, arrays and tables with a four-byte size).
func TestValueSizeOfEveryType(t *testing.T) {
	for v, want := range map[any]int{
		nil: 1, true: 2, int8(1): 2, int16(1): 3, int32(1): 5, int64(1): 9, float32(1): 5, float64(1): 9,
		"abc": 8, amqp.Decimal{Scale: 1, Value: 2}: 6,
	} {
		if got := valueSize(v); got != want {
			t.Errorf("%T: %d, want %d", v, got, want)
		}
	}
	if got := valueSize([]byte("abcd")); got != 9 {
		t.Errorf("[]byte: %d, want 9", got)
	}
	if got := valueSize(time.Now()); got != 9 {
		t.Errorf("time: %d, want 9", got)
	}
	if got := valueSize([]interface{}{"ab", int32(1)}); got != 5+7+5 {
		t.Errorf("array: %d, want 17", got)
	}
	if got := valueSize(amqp.Table{"k": "ab"}); got != 5+2+7 {
		t.Errorf("table: %d, want 14", got)
	}
}

// TestPublishingRoutesOnlyByCC: the CC header is an AMQP array of the
// Outgoing's CC, and a CC or BCC entry among its headers is never sent.
func TestPublishingRoutesOnlyByCC(t *testing.T) {
	o := Outgoing{Exchange: "exchange/me/out", RoutingKey: "build.x", CC: []string{"route.a", "route.b"},
		ContentType: "application/json", MessageID: "id-1",
		Headers: amqp.Table{"CC": []interface{}{"route.steered"}, "BCC": []interface{}{"route.hidden"}, "keep": "me"}}
	p := o.publishing(time.Now())
	cc, ok := p.Headers["CC"].([]interface{})
	if !ok || len(cc) != 2 || cc[0] != "route.a" || cc[1] != "route.b" {
		t.Errorf("CC header %#v, want [route.a route.b] as []interface{}", p.Headers["CC"])
	}
	if _, ok := p.Headers["BCC"]; ok || p.Headers["keep"] != "me" {
		t.Errorf("headers %v: want BCC dropped and keep kept", p.Headers)
	}
	if p.DeliveryMode != amqp.Persistent || p.MessageId != "id-1" || p.ContentType != "application/json" {
		t.Errorf("publishing %+v: want persistent, its id and content type", p)
	}
	bare := (&Outgoing{Headers: amqp.Table{"CC": []interface{}{"route.steered"}}}).publishing(time.Now())
	if _, ok := bare.Headers["CC"]; ok || bare.ContentType != "" {
		t.Errorf("with no CC of its own, a copy sends CC %v and content type %q", bare.Headers["CC"], bare.ContentType)
	}
}

// FuzzCarryHeaders runs arbitrary header tables (every AMQP field type,
// nested, any names and sizes) through CarryHeaders: what it keeps is a
// valid table within the caps, never under a reserved name, and every
// header is either kept, with its value, or named as cut.
func FuzzCarryHeaders(f *testing.F) {
	f.Add([]byte("CC\x00\x05route\x01x-pulse-exchange\x00\x03abc"), uint16(10))
	f.Add([]byte("x-death\x02\x03\x01publish.cc\x00\x40"), uint16(9000))
	f.Fuzz(func(t *testing.T, data []byte, repeat uint16) {
		upstream := brokertest.HeaderTable(data, int(repeat))
		c := CarryHeaders(upstream)
		if err := c.Headers.Validate(); err != nil {
			t.Fatalf("carried headers not a valid table: %v", err)
		}
		if size := TableSize(c.Headers); size > MaxCarriedHeaders+5 {
			t.Fatalf("carried %d bytes", size)
		}
		for name, v := range c.Headers {
			if pulse.Reserved(name) || fieldSize(name, v) > MaxCarriedHeader {
				t.Fatalf("carried %q (%d bytes)", name, fieldSize(name, v))
			}
		}
		for name := range upstream {
			carriedName := name
			if pulse.Reserved(name) {
				carriedName = OriginalPrefix + name
			}
			if _, kept := c.Headers[carriedName]; !kept && len(c.Headers) > 0 && !strings.Contains(c.Cut, "more") && !strings.Contains(c.Cut, truncName(carriedName)) {
				t.Fatalf("%q neither carried nor named as cut (%q)", name, c.Cut)
			}
		}
	})
}

func truncName(name string) string {
	if len(name) > 64 {
		return name[:64]
	}
	return name
}
