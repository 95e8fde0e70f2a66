package buildbot

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// setBuilddate sets builddate from buildid, read as a UTC time.
func setBuilddate(p map[string]any) error {
	id := text(p["buildid"])
	if id == "" {
		return nil
	}
	if date, err := time.Parse("20060102150405", id); err == nil {
		p["builddate"] = date.Unix()
		return nil
	}
	// A buildid of digits that is not a time (month 13): the original
	// published it, its builddate the buildid read as a number.
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 {
		p["builddate"] = n
		return nil
	}
	return fmt.Errorf("buildid %q is neither a YYYYMMDDhhmmss time nor a number", id)
}

// unitTest translates a unit-test (or talos) job; m is the match of
// unitTestPattern.
func (t *Translator) unitTest(j job, m []string, msg translator.Message) ([]translator.Output, error) {
	p := j.payload
	if m[8] == "finished" {
		return nil, translator.DropClass("duplicate_finished", "unit tests are published on log_uploaded; %s is the duplicate .finished notice", j.key)
	}
	buildername := text(p["buildername"])
	p["os"] = t.tables.convertOS(m[3], buildername)
	p["test"] = m[6]
	p["talos"] = strings.Contains(buildername, "talos")
	p["insertion_time"] = msg.Received.Unix()
	if j.stagePlatform != "" {
		p["platform"] = j.stagePlatform
	}
	platform := text(p["platform"])
	if t.tables.ignored[platform] {
		return nil, translator.DropClass("ignored_platform", "ignored platform %q", platform)
	}
	if text(p["logurl"]) == "" {
		return nil, translator.Refuse("no_log_url", "%s is a unit test without a log_url property; its results cannot be read", j.key)
	}
	oses, known := t.tables.Platforms[platform]
	if !known {
		return nil, translator.Refuse("bad_platform", "%s: platform %q is not in the platforms table; add it to rules/buildbot.yaml if it is real", j.key, platform)
	}
	if os := p["os"].(string); !slices.Contains(oses, os) {
		return nil, translator.Refuse("bad_os", "%s: OS %q is not listed under platform %q (builder %q); add it to the platforms table of rules/buildbot.yaml if it is real", j.key, os, platform, buildername)
	}
	kind := "unittest"
	if p["talos"] == true {
		kind = "talos"
	}
	product := text(p["product"])
	if product == "" {
		product = "unknown"
	}
	key := strings.Join([]string{kind, text(p["tree"]), platform, p["os"].(string), text(p["buildtype"]), m[6], product, originalKey(j.key)}, ".")
	return []translator.Output{{RoutingKey: key, Payload: p, Schema: TestSchema}}, nil
}

// build translates a build job, fanning out repacks per locale.
func (t *Translator) build(j job) ([]translator.Output, error) {
	p := j.payload
	tree := text(p["tree"])
	if text(p["platform"]) == "" {
		switch {
		case j.stagePlatform != "":
			p["platform"] = j.stagePlatform
		default:
			guess := t.tables.guessPlatform(j.key)
			if guess == "" {
				return nil, translator.Refuse("no_platform", "%s has no platform or stage_platform property and names no known platform", j.key)
			}
			p["platform"] = guess
		}
	}
	platform := text(p["platform"])
	m, ok := matchBuildKey(j.key, tree, platform)
	if !ok {
		return nil, translator.Refuse("unknown_message_type", "%s does not read as build.<tree>-<platform>[-<tags>].<number>.<event> for tree %q and platform %q", j.key, tree, platform)
	}
	if m[9] == "finished" {
		return nil, translator.DropClass("duplicate_finished", "builds are published on log_uploaded; %s is the duplicate .finished notice", j.key)
	}
	tags := []any{}
	for _, tag := range strings.Split(strings.ReplaceAll(m[7], "_", "-"), "-") {
		if t.tables.notTags[tag] || isDigits(tag) {
			continue
		}
		tags = append(tags, tag)
	}
	if strings.Contains(m[2], "release") {
		tags = append(tags, "release")
	}
	if strings.Contains(m[2], "jetpack") {
		tags = append(tags, "jetpack")
	}
	p["tags"] = tags
	if m[4] != "" || slices.Contains(tags, any("xulrunner")) {
		p["product"] = "xulrunner"
	}

	if t.tables.ignored[platform] {
		return nil, translator.DropClass("ignored_platform", "ignored platform %q", platform)
	}
	if _, known := t.tables.Platforms[platform]; !known {
		return nil, translator.Refuse("bad_platform", "%s: platform %q is not in the platforms table; add it to rules/buildbot.yaml if it is real", j.key, platform)
	}
	for _, tag := range tags {
		if !t.tables.tags[tag.(string)] {
			return nil, translator.Refuse("bad_tag", "%s: tag %q (platform %q, product %v) is not in the tags table; add it to rules/buildbot.yaml if it is real", j.key, tag, platform, p["product"])
		}
	}

	switch {
	case strings.Contains(j.key, "repack"):
		return t.releaseRepack(j)
	case truthy(j.locales):
		return t.nightlyRepack(j)
	}
	if text(p["buildurl"]) == "" {
		return nil, translator.Refuse("no_build_url", "%s is a build without a build URL (packageUrl, build_url or fileURL); there is nothing for consumers to download", j.key)
	}
	return []translator.Output{buildOutput(j.key, p)}, nil
}

// releaseRepack fans a release repack out into one message per locale of
// its comma-separated "locales" property.
func (t *Translator) releaseRepack(j job) ([]translator.Output, error) {
	j.payload["repack"] = true
	list := text(j.locales)
	if list == "" {
		return nil, translator.Refuse("no_locales", "%s is a repack without a 'locales' property", j.key)
	}
	if n := strings.Count(list, ",") + 1; n > t.maxOutputs {
		return nil, t.tooManyLocales(j, n)
	}
	// Every non-empty locale is published: an empty entry ("de,fr,") costs
	// nothing of the real ones (the original published those before it).
	locales := slices.DeleteFunc(strings.Split(list, ","), func(l string) bool { return l == "" })
	if len(locales) == 0 {
		return nil, translator.Refuse("bad_locales", "%s: 'locales' %q names no locale", j.key, list)
	}
	outs := make([]translator.Output, 0, len(locales))
	for i, locale := range locales {
		p := localePayload(j.payload, i, len(locales))
		p["locale"] = locale
		outs = append(outs, buildOutput(j.key, p))
	}
	return outs, nil
}

// localePayload returns the payload of the i-th of n locales of a repack:
// a copy of the common payload, which the last locale takes as it is.
func localePayload(common map[string]any, i, n int) map[string]any {
	if i == n-1 {
		return common
	}
	return maps.Clone(common)
}

// nightlyRepack fans an l10n nightly repack out into one message per locale
// of its "locales" property, a JSON object of locale to result, each with
// that locale's status.
func (t *Translator) nightlyRepack(j job) ([]translator.Output, error) {
	j.payload["repack"] = true
	if n := countMembers(text(j.locales), t.maxOutputs); n > t.maxOutputs {
		return nil, t.tooManyLocales(j, n)
	}
	var results map[string]any
	dec := json.NewDecoder(strings.NewReader(text(j.locales)))
	dec.UseNumber()
	if err := dec.Decode(&results); err != nil || len(results) == 0 {
		return nil, translator.Refuse("bad_locales", "%s: 'locales' %v is not a JSON object of locale to result", j.key, j.locales)
	}
	delete(j.payload, "locales")
	locales := slices.Sorted(maps.Keys(results))
	outs := make([]translator.Output, 0, len(locales))
	for i, locale := range locales {
		p := localePayload(j.payload, i, len(locales))
		p["locale"] = locale
		p["status"] = t.tables.localeStatus(results[locale])
		outs = append(outs, buildOutput(j.key, p))
	}
	return outs, nil
}

// tooManyLocales refuses a repack that would give more outputs than the
// framework takes from one input; at least is how many it lists, or more.
func (t *Translator) tooManyLocales(j job, atLeast int) error {
	return translator.Refuse(translator.ClassTooManyOutputs, "%s is a repack of %d or more locales, one output each; the limit is %d outputs (limits.max_outputs)", j.key, atLeast, t.maxOutputs)
}

// countMembers counts the members of the JSON object text, reading no
// further than the first limit+1 of them; a text that is not an object
// counts 0 (its parse refuses it later).
func countMembers(text string, limit int) int {
	dec := json.NewDecoder(strings.NewReader(text))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0
	}
	n := 0
	for n <= limit && dec.More() {
		var skip json.RawMessage
		if _, err := dec.Token(); err != nil {
			return n
		}
		if err := dec.Decode(&skip); err != nil {
			return n
		}
		n++
	}
	return n
}

// buildOutput makes the output of one build message, with its routing key
// build.<tree>.<platform>.<buildtype>[.<tag>…].<builder>, the locale
// following an l10n tag.
func buildOutput(key string, p map[string]any) translator.Output {
	var b strings.Builder
	b.Grow(len(key) + 64)
	b.WriteString("build")
	for _, word := range [...]string{text(p["tree"]), text(p["platform"]), text(p["buildtype"])} {
		b.WriteByte('.')
		b.WriteString(word)
	}
	for _, tag := range p["tags"].([]any) {
		tag := tag.(string)
		if tag == "" {
			continue
		}
		b.WriteByte('.')
		b.WriteString(tag)
		if tag == "l10n" {
			b.WriteByte('.')
			b.WriteString(text(p["locale"]))
		}
	}
	b.WriteByte('.')
	b.WriteString(originalKey(key))
	return translator.Output{RoutingKey: b.String(), Payload: p, Schema: BuildSchema}
}

// originalKey is the builder part of a raw routing key: "foo" of
// build.foo.12.finished.
func originalKey(key string) string {
	_, rest, ok := strings.Cut(key, ".")
	if !ok {
		return key
	}
	builder, _, _ := strings.Cut(rest, ".")
	return builder
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// truthy is Python's truth for a property value.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case bool:
		return v
	case json.Number:
		return v != "0"
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}
