package pipeline

import (
	"encoding/json"
	"time"
)

// mozillaPulseMeta is the _meta object of the mozillapulse envelope.
type mozillaPulseMeta struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
	Serializer string `json:"serializer"`
	Sent       string `json:"sent"`
}

// Body encodes the published body of an output in its exchange's envelope:
// the payload alone (bare), or the payload with a _meta object
// (mozillapulse). sent is the time of publishing.
func Body(r Routed, sent time.Time) ([]byte, error) {
	if r.Output.Envelope == EnvelopeBare {
		return json.Marshal(r.Payload)
	}
	return json.Marshal(struct {
		Payload map[string]any   `json:"payload"`
		Meta    mozillaPulseMeta `json:"_meta"`
	}{
		Payload: r.Payload,
		Meta: mozillaPulseMeta{
			Exchange:   r.Output.Exchange,
			RoutingKey: r.RoutingKey,
			Serializer: "json",
			Sent:       sent.UTC().Format(time.RFC3339),
		},
	})
}

// jsonStrings encodes a list of strings as a JSON array.
func jsonStrings(items []string) string {
	data, _ := json.Marshal(items)
	return string(data)
}
