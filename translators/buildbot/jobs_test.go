package buildbot_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// prop is one Buildbot property of a hand-written raw message.
type prop struct {
	name  string
	value any
}

// raw builds a raw Buildbot pulse message like the ones on exchange/build/.
func raw(t *testing.T, key string, results int, props ...prop) translator.Message {
	t.Helper()
	triples := make([][]any, 0, len(props))
	for _, p := range props {
		triples = append(triples, []any{p.name, p.value, "test"})
	}
	body, err := json.Marshal(map[string]any{
		"payload": map[string]any{"build": map[string]any{"properties": triples, "results": results}},
		"_meta":   map[string]any{"exchange": "exchange/build/", "routing_key": key},
	})
	if err != nil {
		t.Fatal(err)
	}
	return translator.Message{Exchange: "exchange/build/", RoutingKey: key, Body: body,
		Received: time.Date(2015, 11, 4, 12, 0, 0, 0, time.UTC)}
}

// unitTestProps are the properties a unit-test job of mozilla-central carries.
func unitTestProps(platform, buildername string, extra ...prop) []prop {
	return append([]prop{
		{"branch", "mozilla-central"},
		{"platform", platform},
		{"product", "Firefox"},
		{"buildername", buildername},
		{"buildid", "20151104030437"},
		{"buildnumber", 12},
		{"revision", "6077f51254c6"},
		{"slavename", "tst-linux64-spot-123"},
		{"log_url", "http://archive.mozilla.org/logs/test.txt.gz"},
	}, extra...)
}

// TestUnitTests checks unit-test and talos messages, whose routing keys the
// corpus has none of. Every expectation is worked out by hand from the
// original's key format unittest|talos.<tree>.<platform>.<os>.<buildtype>.<test>.<product>.<builder>.
func TestUnitTests(t *testing.T) {
	tr := newTranslator(t)
	cases := []struct {
		name     string
		msg      translator.Message
		key      string
		platform string
		os, test string
		talos    bool
		buildtyp string
	}{
		{
			name:     "linux64 opt mochitest",
			msg:      raw(t, "build.mozilla-central_ubuntu64_vm_test-mochitest-1.12.log_uploaded", 0, unitTestProps("linux64", "Ubuntu VM 12.04 x64 mozilla-central opt test mochitest-1")...),
			key:      "unittest.mozilla-central.linux64.ubuntu64_vm.opt.mochitest-1.firefox.mozilla-central_ubuntu64_vm_test-mochitest-1",
			platform: "linux64", os: "ubuntu64_vm", test: "mochitest-1", buildtyp: "opt",
		},
		{
			name:     "debug, platform from stage_platform",
			msg:      raw(t, "build.mozilla-central_ubuntu64_vm-debug_test-mochitest-2.55.log_uploaded", 2, unitTestProps("linux64-debug", "Ubuntu VM 12.04 x64 mozilla-central debug test mochitest-2", prop{"stage_platform", "linux64-debug"})...),
			key:      "unittest.mozilla-central.linux64.ubuntu64_vm.debug.mochitest-2.firefox.mozilla-central_ubuntu64_vm-debug_test-mochitest-2",
			platform: "linux64", os: "ubuntu64_vm", test: "mochitest-2", buildtyp: "debug",
		},
		{
			name:     "talos",
			msg:      raw(t, "build.mozilla-central_snowleopard_test-tp5o.7.log_uploaded", 0, unitTestProps("macosx64", "Rev4 MacOSX Snow Leopard 10.6 mozilla-central talos tp5o")...),
			key:      "talos.mozilla-central.macosx64.snowleopard.opt.tp5o.firefox.mozilla-central_snowleopard_test-tp5o",
			platform: "macosx64", os: "snowleopard", test: "tp5o", talos: true, buildtyp: "opt",
		},
		{
			name:     "OS read from the builder name",
			msg:      raw(t, "build.mozilla-central_win32_test-mochitest-1.9.log_uploaded", 0, unitTestProps("win32", "WINNT 5.2 mozilla-central opt test mochitest-1")...),
			key:      "unittest.mozilla-central.win32.xp.opt.mochitest-1.firefox.mozilla-central_win32_test-mochitest-1",
			platform: "win32", os: "xp", test: "mochitest-1", buildtyp: "opt",
		},
		{
			name:     "pgo unittest",
			msg:      raw(t, "build.mozilla-central_win7-ix-pgo_test-reftest.3.log_uploaded", 0, unitTestProps("win32", "Windows 7 32-bit mozilla-central pgo test reftest")...),
			key:      "unittest.mozilla-central.win32.win7-ix.pgo.reftest.firefox.mozilla-central_win7-ix-pgo_test-reftest",
			platform: "win32", os: "win7-ix", test: "reftest", buildtyp: "pgo",
		},
		{
			// (test|unittest|pgo) matches "pgo": no "test-" in the key.
			name:     "pgo talos",
			msg:      raw(t, "build.mozilla-central_ubuntu32_vm_pgo-talos-chromez.5.log_uploaded", 0, unitTestProps("linux", "Ubuntu VM 12.04 mozilla-central pgo talos chromez")...),
			key:      "talos.mozilla-central.linux.ubuntu32_vm.pgo.talos-chromez.firefox.mozilla-central_ubuntu32_vm_pgo-talos-chromez",
			platform: "linux", os: "ubuntu32_vm", test: "talos-chromez", talos: true, buildtyp: "pgo",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outs, err := tr.Translate(c.msg)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if len(outs) != 1 {
				t.Fatalf("got %d outputs, want 1", len(outs))
			}
			o := outs[0]
			if o.RoutingKey != c.key {
				t.Errorf("routing key\n got %s\nwant %s", o.RoutingKey, c.key)
			}
			if o.Schema != "buildbot/test.json" {
				t.Errorf("schema %q, want buildbot/test.json", o.Schema)
			}
			p := o.Payload
			for field, want := range map[string]any{
				"platform": c.platform, "os": c.os, "test": c.test, "talos": c.talos,
				"buildtype": c.buildtyp, "tree": "mozilla-central", "product": "firefox",
				"locale": "en-US", "builddate": int64(1446606277), "buildid": "20151104030437",
				"revision": "6077f51254c6", "logurl": "http://archive.mozilla.org/logs/test.txt.gz",
				"insertion_time": int64(1446638400), "timestamp": "2015-11-04T12:00:00Z",
			} {
				if p[field] != want {
					t.Errorf("%s = %#v, want %#v", field, p[field], want)
				}
			}
			if p["job_number"] != json.Number("12") {
				t.Errorf("job_number = %#v, want 12", p["job_number"])
			}
			if _, has := p["tags"]; has {
				t.Errorf("a unit test has no tags, got %v", p["tags"])
			}
		})
	}
}

// TestRefusalsAndDrops checks that every message the translator does not
// publish says why, with the class the original's exception stood for.
func TestRefusalsAndDrops(t *testing.T) {
	tr := newTranslator(t)
	buildProps := []prop{{"branch", "mozilla-central"}, {"product", "firefox"}, {"packageUrl", "http://x/firefox.tar.bz2"}}
	cases := []struct {
		name    string
		msg     translator.Message
		class   string // a refusal of this class, or
		dropped bool   // a drop
	}{
		{"unit test .finished is a duplicate", raw(t, "build.mozilla-central_ubuntu64_vm_test-mochitest-1.12.finished", 0, unitTestProps("linux64", "x")...), "", true},
		{"build .finished is a duplicate", raw(t, "build.mozilla-central-linux64.105.finished", 0, append(buildProps, prop{"platform", "linux64"})...), "", true},
		{"ignored platform", raw(t, "build.mozilla-central-nexus-4.3.log_uploaded", 0, append(buildProps, prop{"platform", "nexus-4"})...), "", true},
		{"internal builder", raw(t, "build.release-mozilla-beta-firefox_tag.40.log_uploaded", 0, prop{"branch", "release-mozilla-beta"}), "", true},
		{"source builder", raw(t, "build.release-mozilla-esr10-firefox_source.0.log_uploaded", 0, prop{"branch", "release-mozilla-esr10"}), "", true},
		{"unknown platform", raw(t, "build.mozilla-central-beos.3.log_uploaded", 0, append(buildProps, prop{"platform", "beos"})...), "bad_platform", false},
		{"unknown tag", raw(t, "build.mozilla-central-linux64-frobnicate.3.log_uploaded", 0, append(buildProps, prop{"platform", "linux64"})...), "bad_tag", false},
		{"unknown OS", raw(t, "build.mozilla-central_amiga_test-mochitest-1.12.log_uploaded", 0, unitTestProps("linux64", "x")...), "bad_os", false},
		{"unit test without log", raw(t, "build.mozilla-central_ubuntu64_vm_test-mochitest-1.12.log_uploaded", 0, prop{"branch", "mozilla-central"}, prop{"platform", "linux64"}, prop{"buildername", "x"}), "no_log_url", false},
		{"build without build URL", raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, prop{"branch", "mozilla-central"}, prop{"platform", "linux64"}), "no_build_url", false},
		{"branch is a number", raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, append(buildProps, prop{"platform", "linux64"}, prop{"branch", 5})...), "bad_property", false},
		{"platform is an array", raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, append(buildProps, prop{"platform", []any{"linux64"}})...), "bad_property", false},
		{"no branch", raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, prop{"platform", "linux64"}), "no_branch", false},
		{"no platform anywhere", raw(t, "build.mozilla-central-beos.3.log_uploaded", 0, prop{"branch", "mozilla-central"}), "no_platform", false},
		{"release repack without locales", raw(t, "build.release-mozilla-beta-linux_repack_1.4.log_uploaded", 0, prop{"branch", "release-mozilla-beta"}, prop{"platform", "linux"}), "no_locales", false},
		{"release repack with no locale between its commas", raw(t, "build.release-mozilla-beta-linux_repack_1.4.log_uploaded", 0, prop{"branch", "release-mozilla-beta"}, prop{"platform", "linux"}, prop{"locales", ",,"}), "bad_locales", false},
		{"nightly repack with broken locales", raw(t, "build.mozilla-central-linux64-l10n-nightly-1.6.log_uploaded", 0, prop{"branch", "mozilla-central"}, prop{"platform", "linux64"}, prop{"locales", "{not json"}), "bad_locales", false},
		{"bad buildid", raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, append(buildProps, prop{"platform", "linux64"}, prop{"buildid", "yesterday"})...), "bad_buildid", false},
		{"not a buildbot message", translator.Message{RoutingKey: "build.x.1.finished", Body: []byte(`{"payload": {"build": {"properties": [["only-a-name"]]}}}`)}, "malformed", false},
		{"no properties", translator.Message{RoutingKey: "build.x.1.finished", Body: []byte(`{"payload": {}}`)}, "malformed", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outs, err := tr.Translate(c.msg)
			var refusal *translator.Refusal
			var drop *translator.Dropped
			switch {
			case c.dropped:
				if !errors.As(err, &drop) || drop.Reason == "" {
					t.Fatalf("got %v (%d outputs), want a drop with a reason", err, len(outs))
				}
			case !errors.As(err, &refusal):
				t.Fatalf("got %v (%d outputs), want a %s refusal", err, len(outs), c.class)
			case refusal.Class != c.class:
				t.Fatalf("class %q (%s), want %q", refusal.Class, refusal.Reason, c.class)
			case refusal.Reason == "":
				t.Fatal("a refusal without a reason")
			}
			if len(outs) != 0 {
				t.Errorf("a refused or dropped message has %d outputs", len(outs))
			}
		})
	}
}

// TestNightlyLocaleStatus checks the per-locale status of an l10n nightly
// repack against rules/buildbot.yaml: "Success", "SUCCESS" and "0" are 0,
// anything else 2 (see also TestNightlyLocaleStatusOfEverySpelling).
func TestNightlyLocaleStatus(t *testing.T) {
	tr := newTranslator(t)
	msg := raw(t, "build.mozilla-central-linux64-l10n-nightly-1.6.log_uploaded", 2,
		prop{"branch", "mozilla-central"}, prop{"platform", "linux64"}, prop{"product", "firefox"},
		prop{"locales", `{"ar": "Success", "da": "0", "de": "2", "en-GB": "Failed", "fr": "SUCCESS"}`})
	outs, err := tr.Translate(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"ar": 0, "da": 0, "de": 2, "en-GB": 2, "fr": 0}
	if len(outs) != len(want) {
		t.Fatalf("got %d outputs, want %d", len(outs), len(want))
	}
	for _, o := range outs {
		locale := o.Payload["locale"].(string)
		if o.Payload["status"] != want[locale] {
			t.Errorf("%s: status %v, want %d", locale, o.Payload["status"], want[locale])
		}
		if o.RoutingKey != "build.mozilla-central.linux64.opt.l10n."+locale+".nightly.mozilla-central-linux64-l10n-nightly-1" {
			t.Errorf("routing key %s", o.RoutingKey)
		}
		if _, has := o.Payload["locales"]; has {
			t.Errorf("%s: a nightly repack output keeps no locales field", locale)
		}
		if o.Payload["repack"] != true {
			t.Errorf("%s: repack = %v", locale, o.Payload["repack"])
		}
	}
}

// TestTranslateDoesNotShareState checks that fan-out copies are
// independent: changing one output leaves the others alone.
func TestTranslateDoesNotShareState(t *testing.T) {
	tr := newTranslator(t)
	msg := raw(t, "build.release-mozilla-beta-linux_repack_1.4.log_uploaded", 0,
		prop{"branch", "release-mozilla-beta"}, prop{"platform", "linux"}, prop{"locales", "de,fr"})
	outs, err := tr.Translate(msg)
	if err != nil || len(outs) != 2 {
		t.Fatalf("got %d outputs, %v", len(outs), err)
	}
	outs[0].Payload["tree"] = "changed"
	if outs[1].Payload["tree"] != "release-mozilla-beta" {
		t.Fatal("the fan-out copies share their payload")
	}
}

// TestBodyNotUTF8 gives the translator, by hand, a unit test's body whose
// branch is not UTF-8 (the framework refuses such bodies before any
// translator sees them): it is refused as malformed, where the tree's
// routing-key pattern could not have been compiled.
func TestBodyNotUTF8(t *testing.T) {
	tr := newTranslator(t)
	key := "build.mozilla-central\xff_ubuntu64_vm_test-mochitest-1.12.log_uploaded"
	props := unitTestProps("linux64", "Ubuntu VM 12.04 x64 mozilla-central opt test mochitest-1")
	props[0].value = "mozilla-central\xff"
	m := raw(t, "build.x.1.log_uploaded", 0, props...)
	// encoding/json writes \ufffd for the byte; put it back.
	m.Body = bytes.ReplaceAll(m.Body, []byte(`mozilla-central\ufffd`), []byte("mozilla-central\xff"))
	m.Body = bytes.Replace(m.Body, []byte("build.x.1.log_uploaded"), []byte(key), 1)
	if !bytes.Contains(m.Body, []byte("\xff")) {
		t.Fatal("the body is UTF-8 after all")
	}
	_, err := tr.Translate(m)
	var refusal *translator.Refusal
	if !errors.As(err, &refusal) || refusal.Class != "malformed" || !strings.Contains(refusal.Reason, "UTF-8") {
		t.Fatalf("got %v, want a malformed refusal that names UTF-8", err)
	}
}

// errorsAs is errors.As, for the fidelity tests.
func errorsAs(err error, target any) bool { return errors.As(err, target) }
