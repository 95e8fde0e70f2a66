package buildbot

import "strings"

// matchBuildKey matches a build's routing key as buildPattern does for the
// tree and platform, without a regular expression: m holds what
// FindStringSubmatch would (the whole match, then the nine groups, "" for
// a group that took no part), and ok whether the key matched.
//
// It tries the pattern's choices in the pattern's order of preference: the
// optional prefix (release-, jetpack-, b2g_, then none), the optional
// "xulrunner" and separator, the optional separator after the platform
// (one, then none), and the shortest builder suffix (.*? stops at a
// newline) after which come ".<number>." and log_uploaded or finished.
// FuzzBuildKeyMatchesPattern holds it to the pattern.
func matchBuildKey(key, tree, platform string) (m [10]string, ok bool) {
	const head = "build."
	if !strings.HasPrefix(key, head) {
		return m, false
	}
	for _, prefix := range [...]string{"release-", "jetpack-", "b2g_", ""} {
		if !strings.HasPrefix(key[len(head):], prefix) {
			continue
		}
		m[2] = prefix
		if afterPrefix(&m, key, len(head)+len(prefix), tree, platform) {
			return m, true
		}
	}
	return [10]string{}, false
}

// afterPrefix matches the rest of buildPattern from offset i of key, after
// the optional prefix: the tree, a separator, the optional xulrunner, the
// platform, and the suffix.
func afterPrefix(m *[10]string, key string, i int, tree, platform string) bool {
	if !strings.HasPrefix(key[i:], tree) {
		return false
	}
	i += len(tree)
	if i >= len(key) || !isKeySeparator(key[i]) {
		return false
	}
	i++
	m[3] = tree
	for _, xul := range [...]bool{true, false} {
		j := i
		m[4] = ""
		if xul {
			const word = "xulrunner"
			if !strings.HasPrefix(key[j:], word) || j+len(word) >= len(key) || !isKeySeparator(key[j+len(word)]) {
				continue
			}
			j += len(word) + 1
			m[4] = key[i:j]
		}
		if !strings.HasPrefix(key[j:], platform) {
			continue
		}
		j += len(platform)
		m[5] = platform
		// ([-|_]?) is greedy: with the separator first.
		for _, sep := range [...]bool{true, false} {
			k := j
			if sep {
				if k >= len(key) || !isKeySeparator(key[k]) {
					continue
				}
				k++
			}
			m[6] = key[j:k]
			if dot, end, ok := suffix(m, key, k); ok {
				m[0], m[1] = key[:end], key[len("build."):dot]
				return true
			}
		}
	}
	return false
}

// suffix matches (.*?)\.(\d+)\.(log_uploaded|finished) from offset i,
// with the shortest builder suffix that the rest follows, and returns the
// offset of the dot after that suffix and the end of the match.
func suffix(m *[10]string, key string, i int) (dot, end int, ok bool) {
	for e := i; e < len(key); e++ {
		if key[e] == '\n' {
			return 0, 0, false // . does not match a newline
		}
		if key[e] != '.' {
			continue
		}
		d := e + 1
		for d < len(key) && key[d]-'0' <= 9 {
			d++
		}
		if d == e+1 || d >= len(key) || key[d] != '.' {
			continue
		}
		for _, event := range [...]string{"log_uploaded", "finished"} {
			if strings.HasPrefix(key[d+1:], event) {
				m[7], m[8], m[9] = key[i:e], key[e+1:d], event
				return e, d + 1 + len(event), true
			}
		}
	}
	return 0, 0, false
}

// isKeySeparator is the pattern's [-|_].
func isKeySeparator(c byte) bool { return c == '-' || c == '|' || c == '_' }
