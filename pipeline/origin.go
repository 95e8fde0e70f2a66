package pipeline

import "strings"

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
			if TopicMatches(pattern, routingKey) {
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

// TopicMatches reports whether a topic exchange routes key to a queue
// bound with pattern: words split by dots, "*" standing for one word and
// "#" for zero or more.
func TopicMatches(pattern, key string) bool {
	return wordsMatch(strings.Split(pattern, "."), strings.Split(key, "."))
}

func wordsMatch(pattern, key []string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case "#":
			for len(pattern) > 1 && pattern[1] == "#" {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := range len(key) + 1 {
				if wordsMatch(pattern[1:], key[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(key) == 0 {
				return false
			}
		default:
			if len(key) == 0 || key[0] != pattern[0] {
				return false
			}
		}
		pattern, key = pattern[1:], key[1:]
	}
	return len(key) == 0
}
