package buildbot_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// FuzzTranslate feeds the translator mutations of the corpus messages:
// whatever the body, it does not panic; it refuses with a class and a
// reason, drops with a reason, or returns outputs with a routing key and a
// payload that encodes as JSON. Crashers found are kept in
// testdata/fuzz/FuzzTranslate and run with every go test.
func FuzzTranslate(f *testing.F) {
	tr := newTranslator(f)
	for _, m := range corpusMessages(f) {
		f.Add(m.RoutingKey, m.Body)
	}
	f.Fuzz(func(t *testing.T, routingKey string, body []byte) {
		outs, err := tr.Translate(translator.Message{Exchange: "exchange/build/", RoutingKey: routingKey, Body: body, Received: time.Unix(1446634715, 0)})
		var refusal *translator.Refusal
		var dropped *translator.Dropped
		switch {
		case errors.As(err, &refusal):
			if refusal.Class == "" || refusal.Reason == "" {
				t.Fatalf("a refusal without class or reason: %#v", refusal)
			}
			return
		case errors.As(err, &dropped):
			if dropped.Reason == "" {
				t.Fatal("a drop without a reason")
			}
			return
		case err != nil:
			t.Fatalf("an error that is neither a refusal nor a drop: %v", err)
		}
		if len(outs) == 0 {
			t.Fatal("no outputs, no refusal, no drop")
		}
		for _, o := range outs {
			if o.RoutingKey == "" || o.Payload == nil {
				t.Fatalf("output without routing key or payload: %#v", o)
			}
			if _, err := json.Marshal(o.Payload); err != nil {
				t.Fatalf("payload does not encode: %v", err)
			}
		}
	})
}
