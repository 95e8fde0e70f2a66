package pulse

import "strings"

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
