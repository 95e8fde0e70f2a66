package buildbot

import (
	"encoding/json"
	"strings"
	"time"
)

// job is what the translator read from one raw message, before it is told
// apart as a build or a unit test.
type job struct {
	key           string
	payload       map[string]any // the fields common to builds and tests
	stagePlatform string
	locales       any
}

// propertyFields maps Buildbot property names to the payload fields that
// take their value unchanged (but for URL quoting, see urlFields).
var propertyFields = map[string]string{
	"buildnumber":          "job_number",
	"revision":             "revision",
	"version":              "version",
	"build_number":         "build_number",
	"previous_buildid":     "previous_buildid",
	"locale":               "locale",
	"packageUrl":           "buildurl",
	"build_url":            "buildurl",
	"fileURL":              "buildurl",
	"log_url":              "logurl",
	"en_revision":          "release",
	"script_repo_revision": "release",
	"symbolsUrl":           "symbols_url",
	"testsUrl":             "testsurl",
	"testPackagesUrl":      "test_packages_url",
	"buildername":          "buildername",
	"slavename":            "slave",
	"completeMarUrl":       "completemarurl",
	"completeMarHash":      "completemarhash",
}

// urlFields are quoted as the original quoted them: characters that may not
// stand in a URL (a space in "Firefox 20.0.1.dmg") are percent-encoded.
// The corpus shows these four quoted; completemarurl and test_packages_url
// the original left as they came, and so does this translator.
var urlFields = map[string]bool{
	"buildurl": true, "logurl": true, "symbols_url": true, "testsurl": true,
}

// nullFields are the payload fields every message has, null until a
// property sets them.
var nullFields = []string{
	"job_number", "buildid", "build_number", "previous_buildid", "status", "platform", "builddate",
	"buildurl", "locale", "locales", "logurl", "testsurl", "test_packages_url", "symbols_url",
	"release", "buildername", "slave", "repack", "revision", "product", "version", "tree",
}

// payloadRoom is the room a payload map is made with: a build's 26 or 27
// fields (the null fields, key, timestamp, buildtype, tags, perhaps
// blobber_files) fit the 32 slots Go gives it; a unit test's 29 grow it
// once. Room for 29 would double every build's map.
const payloadRoom = 28

// read collects the fields of a raw message.
func (t *Translator) read(key string, raw *rawMessage, received time.Time) job {
	p := make(map[string]any, payloadRoom)
	for _, field := range nullFields {
		p[field] = nil
	}
	p["key"] = key
	p["timestamp"] = received.UTC().Format("2006-01-02T15:04:05Z")
	j := job{key: key, payload: p}
	for _, prop := range raw.Payload.Build.Properties {
		if field, ok := propertyFields[string(prop.name)]; ok {
			v := prop.value()
			if s, isText := v.(string); isText && urlFields[field] {
				v = quoteURL(s)
			}
			p[field] = v
			continue
		}
		switch string(prop.name) {
		case "product":
			v := prop.value()
			if s, ok := v.(string); ok {
				v = strings.ToLower(s)
			}
			p["product"] = v
		case "branch":
			v := prop.value()
			if s, ok := v.(string); ok {
				v = s[strings.LastIndexByte(s, '/')+1:]
			}
			p["tree"] = v
		case "buildid":
			v := prop.value()
			if n, ok := v.(json.Number); ok {
				v = n.String()
			}
			p["buildid"] = v
		case "platform":
			v := prop.value()
			if s, ok := v.(string); ok {
				if i := strings.Index(s, "-debug"); i >= 0 {
					s = s[:i]
				}
				v = s
			}
			p["platform"] = v
		case "locales":
			j.locales = prop.value()
			p["locales"] = j.locales
		case "blobber_files":
			// A JSON document in a string; the original kept the field out
			// when it was malformed, and so do we.
			var files any
			if json.Unmarshal([]byte(text(prop.value())), &files) == nil {
				p["blobber_files"] = files
			}
		case "stage_platform":
			j.stagePlatform = t.tables.stripBuildtype(text(prop.value()))
		}
	}
	if text(p["locale"]) == "" {
		p["locale"] = "en-US"
	}
	p["status"] = raw.Payload.Build.Results
	switch {
	case strings.Contains(key, "debug"):
		p["buildtype"] = "debug"
	case strings.Contains(key, "pgo"):
		p["buildtype"] = "pgo"
	default:
		p["buildtype"] = "opt"
	}
	return j
}

// quoteURL percent-encodes the bytes that may not stand in a URL and leaves
// everything else, including existing %XX escapes, as it is.
func quoteURL(s string) string {
	needs := false
	for i := 0; i < len(s); i++ {
		if unsafeInURL[s[i]] {
			needs = true
			break
		}
	}
	if !needs {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unsafeInURL[c] {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unsafeInURL marks the bytes quoteURL percent-encodes: controls, space,
// DEL, bytes beyond ASCII and " < > \ ^ ` { | }.
var unsafeInURL = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x21 || c >= 0x7f || strings.IndexByte(" \"<>\\^`{|}", byte(c)) >= 0
	}
	return t
}()
