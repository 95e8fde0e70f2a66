package process

import (
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// TestOutputIDDerivation pins the id of one output, worked out apart from
// this code (with Python's hashlib and an xxHash64 checked against its
// published test vectors): consumers de-duplicate by these ids, so a change
// of derivation must be deliberate.
func TestOutputIDDerivation(t *testing.T) {
	msg := translator.Message{
		Exchange:   "exchange/build/",
		RoutingKey: "build.x.98.log_uploaded",
		Body:       []byte(`{"payload": {"build": {"number": 98}}, "_meta": {"routing_key": "build.x.98.log_uploaded"}}`),
	}
	got := outputID(inputDigest(msg), "build", "exchange/pulsetranslator/build/normalized", "build.mozilla-central.linux", 2)
	if want := "f97b08c8-5750-8728-8bde-69a38082e5f9"; got != want {
		t.Errorf("id %s, want %s", got, want)
	}
	// Each part of the input counts.
	for _, other := range []translator.Message{
		{Exchange: "exchange/build", RoutingKey: msg.RoutingKey, Body: msg.Body},
		{Exchange: msg.Exchange, RoutingKey: "build.x.99.log_uploaded", Body: msg.Body},
		{Exchange: msg.Exchange, RoutingKey: msg.RoutingKey, Body: append([]byte(" "), msg.Body...)},
	} {
		if inputDigest(other) == inputDigest(msg) {
			t.Errorf("%q %q %q has the digest of the pinned message", other.Exchange, other.RoutingKey, other.Body)
		}
	}
}
