package buildbot

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// tables is the data of rules/buildbot.yaml the translator reads. See that
// file for what each table means.
type tables struct {
	Buildtypes        []string            `json:"buildtypes"`
	Platforms         map[string][]string `json:"platforms"`
	IgnoredPlatforms  []string            `json:"ignored_platforms"`
	Tags              []string            `json:"tags"`
	NotTags           []string            `json:"not_tags"`
	InternalBuilders  []string            `json:"internal_builders"`
	OSRenames         map[string]string   `json:"os_renames"`
	OSFromBuildername struct {
		AppliesTo []string `json:"applies_to"`
		Patterns  []struct {
			Match string `json:"match"`
			OS    string `json:"os"`
		} `json:"patterns"`
		Otherwise string `json:"otherwise"`
	} `json:"os_from_buildername"`
	RepackLocaleStatus struct {
		Results   map[string]int `json:"results"`
		Otherwise int            `json:"otherwise"`
	} `json:"repack_locale_status"`
}

// osPattern is one compiled entry of os_from_buildername.
type osPattern struct {
	re *regexp.Regexp
	os string
}

// compiledTables is tables made ready for lookups.
type compiledTables struct {
	tables
	platformsByName []string // platform names, longest guess first
	ignored         map[string]bool
	tags            map[string]bool
	notTags         map[string]bool
	osPatterns      []osPattern
	osFromName      map[string]bool
	localeResults   map[string]int // repack_locale_status.results, keys lower-cased
}

// requiredTables are the tables the translator cannot work without.
var requiredTables = []string{"buildtypes", "platforms", "tags", "internal_builders", "os_from_buildername", "repack_locale_status"}

// loadTables decodes and checks the translator's tables from the merged
// rule-file tables.
func loadTables(raw map[string]any) (*compiledTables, error) {
	var missing []string
	for _, name := range requiredTables {
		if _, ok := raw[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("buildbot translator: the pipeline's rule files lack the tables %s; add builtin:buildbot.yaml (or a copy of it) to the pipeline's rules", strings.Join(missing, ", "))
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("buildbot translator: tables: %w", err)
	}
	var t tables
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("buildbot translator: a table has the wrong shape: %w (compare with rules/buildbot.yaml)", err)
	}
	c := &compiledTables{
		tables:     t,
		ignored:    setOf(t.IgnoredPlatforms),
		tags:       setOf(t.Tags),
		notTags:    setOf(t.NotTags),
		osFromName: setOf(t.OSFromBuildername.AppliesTo),
	}
	var errs []error
	if len(t.Platforms) == 0 {
		errs = append(errs, errors.New("table platforms is empty"))
	}
	for name := range t.Platforms {
		c.platformsByName = append(c.platformsByName, name)
	}
	// The original guessed a platform from a routing key by trying the
	// platform names in reverse lexical order, so "linux64" wins over "linux".
	slices.Sort(c.platformsByName)
	slices.Reverse(c.platformsByName)
	c.localeResults = make(map[string]int, len(t.RepackLocaleStatus.Results))
	for _, result := range slices.Sorted(maps.Keys(t.RepackLocaleStatus.Results)) {
		key, status := strings.ToLower(result), t.RepackLocaleStatus.Results[result]
		if other, ok := c.localeResults[key]; ok && other != status {
			errs = append(errs, fmt.Errorf("repack_locale_status.results: results are compared without regard to case, so %q cannot be both %d and %d; keep one spelling", result, other, status))
		}
		c.localeResults[key] = status
	}
	for i, p := range t.OSFromBuildername.Patterns {
		re, err := regexp.Compile("(?i)" + p.Match)
		if err != nil {
			errs = append(errs, fmt.Errorf("os_from_buildername.patterns[%d].match: %w", i, err))
			continue
		}
		c.osPatterns = append(c.osPatterns, osPattern{re: re, os: p.OS})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("buildbot translator: %w", err)
	}
	return c, nil
}

func setOf(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// guessPlatform finds a known platform, or failing that an OS name, in a
// routing key, as the original did for messages without a platform property.
func (c *compiledTables) guessPlatform(key string) string {
	for _, p := range c.platformsByName {
		if strings.Contains(key, p) {
			return p
		}
	}
	for _, p := range c.platformsByName {
		for _, os := range c.Platforms[p] {
			if strings.Contains(key, os) {
				return os
			}
		}
	}
	return ""
}

// stripBuildtype cuts "linux64-debug" to "linux64": everything from the
// separator before the first build type found.
func (c *compiledTables) stripBuildtype(platform string) string {
	for _, bt := range c.Buildtypes {
		if i := strings.Index(platform, bt); i >= 0 {
			platform = platform[:max(i-1, 0)]
		}
	}
	return platform
}

// convertOS turns the OS word of a unit-test builder into an OS name.
func (c *compiledTables) convertOS(os, buildername string) string {
	if renamed, ok := c.OSRenames[os]; ok {
		return renamed
	}
	if !c.osFromName[os] {
		return os
	}
	for _, p := range c.osPatterns {
		if p.re.MatchString(buildername) {
			return p.os
		}
	}
	return c.OSFromBuildername.Otherwise
}

// localeStatus is the status of one locale of a nightly repack: the text of
// its result compared with repack_locale_status.results without regard to
// case, as the original did. A string is its own text; any other JSON value
// is the text Python gave it: an integer as its digits (-0 is "0"), any
// other number as written (0.0 is not 0), true, false and
// null as "True", "False" and "None".
func (c *compiledTables) localeStatus(result any) int {
	if status, ok := c.localeResults[strings.ToLower(resultText(result))]; ok {
		return status
	}
	return c.RepackLocaleStatus.Otherwise
}

// resultText is the text of a locale's result, as str() wrote it in Python.
func resultText(result any) string {
	switch r := result.(type) {
	case string:
		return r
	case json.Number:
		// JSON writes an integer without leading zeros, so its digits are
		// Python's but for minus zero, which Python's int reads as 0.
		if r == "-0" {
			return "0"
		}
		return string(r)
	case bool:
		if r {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	default:
		data, _ := json.Marshal(r)
		return string(data)
	}
}

// internalBuilder returns the word of internal_builders found in key.
func (c *compiledTables) internalBuilder(key string) string {
	for _, word := range c.InternalBuilders {
		if strings.Contains(key, word) {
			return word
		}
	}
	return ""
}
