package config

import (
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// BoundOrigin checks where a message says it was first published,
// exchange and routingKey, against the pipeline's bindings: what comes
// back to the pipeline (a waiter, a replayed message) or is shown of a
// parked one may claim only an origin the input queue could have had the
// message from. An exchange the pipeline binds with a pattern that
// matches routingKey is taken as it is; any other claim (a forged x-death
// entry, a header written upstream) gives way to the one exchange the
// pipeline binds with a pattern that matches routingKey. ok is false when
// none or several do: the origin is unknown.
func (p PipelineConfig) BoundOrigin(exchange, routingKey string) (string, bool) {
	found := ""
	for _, b := range p.Bindings {
		matches := false
		for _, pattern := range b.RoutingKeys {
			if pulse.TopicMatches(pattern, routingKey) {
				matches = true
				break
			}
		}
		if !matches {
			continue
		}
		if b.Exchange == exchange {
			return exchange, true
		}
		if found != "" && found != b.Exchange {
			return "", false
		}
		found = b.Exchange
	}
	return found, found != ""
}
