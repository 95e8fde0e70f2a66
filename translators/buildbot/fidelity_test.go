package buildbot_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"
	"github.com/pulsetranslator/pulsetranslator/translators/buildbot"
)

// The cases below are edge cases of the original pulsetranslator that the
// corpus does not hold. Each expectation is worked out by hand from the
// original's code (messageparams.py and the translation of
// pulsetranslator.py), not from this translator's output; the comment of
// each case says which part of the original gives it.

// TestOriginalOSNames: every OS name the original's platform table lists,
// and its renames, publish a unit test. In particular a talos job on a
// Yosemite r7 machine: the original renames the OS yosemite_r7 to
// yosemite (os_conversions), which macosx64 lists, and publishes it on
// talos.<tree>.<platform>.<os>.<buildtype>.<test>.<product>.<builder>.
func TestOriginalOSNames(t *testing.T) {
	tr := newTranslator(t)
	yosemite := raw(t, "build.mozilla-inbound_yosemite_r7_test-chromez.15.log_uploaded", 0,
		unitTestProps("macosx64", "Rev7 MacOSX Yosemite 10.10.5 mozilla-inbound talos chromez", prop{"branch", "mozilla-inbound"})...)
	outs, err := tr.Translate(yosemite)
	if err != nil || len(outs) != 1 {
		t.Fatalf("talos on yosemite_r7: %d outputs, %v", len(outs), err)
	}
	if want := "talos.mozilla-inbound.macosx64.yosemite.opt.chromez.firefox.mozilla-inbound_yosemite_r7_test-chromez"; outs[0].RoutingKey != want {
		t.Errorf("routing key\n got %s\nwant %s", outs[0].RoutingKey, want)
	}
	if outs[0].Payload["os"] != "yosemite" || outs[0].Payload["talos"] != true {
		t.Errorf("os %v, talos %v; want yosemite, true", outs[0].Payload["os"], outs[0].Payload["talos"])
	}

	// The OS names the original lists that the key's OS word gives as it
	// is (only macosx, macosx64, win32 and the renamed ones are
	// converted).
	for _, c := range []struct{ platform, os string }{
		{"linux64", "ubuntu64_vm_lnx_large"},
		{"linux64-asan", "ubuntu64-asan_vm_lnx_large"},
		{"win32", "xp_ix"},
		{"win32", "win7_ix"},
		{"win32", "win7_vm"},
		{"win32", "win7_vm_gfx"},
		{"win64", "win8_64"},
		{"android-api-11", "ubuntu64_vm_armv7_large"},
	} {
		key := fmt.Sprintf("build.mozilla-central_%s_test-mochitest-1.3.log_uploaded", c.os)
		outs, err := tr.Translate(raw(t, key, 0, unitTestProps(c.platform, "some builder")...))
		if err != nil || len(outs) != 1 {
			t.Errorf("%s on %s: %v", c.os, c.platform, err)
			continue
		}
		want := fmt.Sprintf("unittest.mozilla-central.%s.%s.opt.mochitest-1.firefox.mozilla-central_%s_test-mochitest-1", c.platform, c.os, c.os)
		if outs[0].RoutingKey != want {
			t.Errorf("%s on %s: routing key %s, want %s", c.os, c.platform, outs[0].RoutingKey, want)
		}
	}
}

// TestReleaseRepackEmptyLocales: the original split "locales" on commas
// and published each locale in turn, so "de,fr," published de and fr
// before it reached the empty entry. Every non-empty locale is published;
// only a list with none is refused.
func TestReleaseRepackEmptyLocales(t *testing.T) {
	tr := newTranslator(t)
	for list, want := range map[string][]string{
		"de,fr,":  {"de", "fr"},
		"de,,fr":  {"de", "fr"},
		",de":     {"de"},
		"de,fr":   {"de", "fr"},
		",":       nil,
		",,,,,,,": nil,
	} {
		msg := raw(t, "build.release-mozilla-beta-linux_repack_1.4.log_uploaded", 0,
			prop{"branch", "release-mozilla-beta"}, prop{"platform", "linux"}, prop{"locales", list})
		outs, err := tr.Translate(msg)
		if want == nil {
			var refusal *translator.Refusal
			if !errorsAs(err, &refusal) || refusal.Class != "bad_locales" {
				t.Errorf("%q: %v, want a bad_locales refusal", list, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", list, err)
			continue
		}
		var got []string
		for _, o := range outs {
			got = append(got, o.Payload["locale"].(string))
			// build.<tree>.<platform>.<buildtype>.<builder>: the builder's
			// words "repack" and "1" are not tags.
			if o.RoutingKey != "build.release-mozilla-beta.linux.opt.release-mozilla-beta-linux_repack_1" || o.Payload["repack"] != true {
				t.Errorf("%q: routing key %s, repack %v", list, o.RoutingKey, o.Payload["repack"])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%q: locales %v, want %v", list, got, want)
		}
	}
}

// TestUnparsableBuildid: the original read builddate from the buildid as
// a time and, where that failed (month 13), as a number; it published the
// build either way. A buildid that is no number is refused.
func TestUnparsableBuildid(t *testing.T) {
	tr := newTranslator(t)
	props := []prop{{"branch", "mozilla-central"}, {"product", "firefox"}, {"platform", "linux64"},
		{"packageUrl", "http://archive.mozilla.org/pub/firefox.tar.bz2"}}
	for buildid, want := range map[string]any{
		"20151104030207": int64(1446606127), // 2015-11-04T03:02:07Z
		"20151304030207": int64(20151304030207),
		"20151132030207": int64(20151132030207),
		"2015110403":     int64(2015110403),
	} {
		outs, err := tr.Translate(raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, append(props, prop{"buildid", buildid})...))
		if err != nil || len(outs) != 1 {
			t.Errorf("buildid %s: %d outputs, %v", buildid, len(outs), err)
			continue
		}
		if got := outs[0].Payload["builddate"]; got != want || outs[0].Payload["buildid"] != buildid {
			t.Errorf("buildid %s: builddate %#v (buildid %v), want %#v", buildid, got, outs[0].Payload["buildid"], want)
		}
	}
	_, err := tr.Translate(raw(t, "build.mozilla-central-linux64.105.log_uploaded", 0, append(props, prop{"buildid", "yesterday"})...))
	var refusal *translator.Refusal
	if !errorsAs(err, &refusal) || refusal.Class != "bad_buildid" {
		t.Errorf("buildid yesterday: %v, want bad_buildid", err)
	}
}

// TestURLQuoting: buildurl, logurl, testsurl and symbols_url are
// percent-encoded where they hold characters a URL may not (the corpus
// shows them so); completemarurl and test_packages_url the original
// passed on as they came.
func TestURLQuoting(t *testing.T) {
	tr := newTranslator(t)
	const base = "http://stage.mozilla.org/pub/firefox/20.0.1-candidates/build1/mac/en-US/"
	outs, err := tr.Translate(raw(t, "build.mozilla-central-macosx64.331.log_uploaded", 0,
		prop{"branch", "mozilla-central"}, prop{"product", "firefox"}, prop{"platform", "macosx64"},
		prop{"packageUrl", base + "Firefox 20.0.1.dmg"}, prop{"log_url", base + "log 1.txt.gz"},
		prop{"testsUrl", base + "Firefox 20.0.1.tests.zip"}, prop{"symbolsUrl", base + "Firefox 20.0.1.symbols.zip"},
		prop{"testPackagesUrl", base + "Firefox 20.0.1.test_packages.json"},
		prop{"completeMarUrl", base + "firefox 20.0.1.complete.mar"}))
	if err != nil || len(outs) != 1 {
		t.Fatalf("%d outputs, %v", len(outs), err)
	}
	p := outs[0].Payload
	for field, want := range map[string]string{
		"buildurl":          base + "Firefox%2020.0.1.dmg",
		"logurl":            base + "log%201.txt.gz",
		"testsurl":          base + "Firefox%2020.0.1.tests.zip",
		"symbols_url":       base + "Firefox%2020.0.1.symbols.zip",
		"test_packages_url": base + "Firefox 20.0.1.test_packages.json",
		"completemarurl":    base + "firefox 20.0.1.complete.mar",
	} {
		if p[field] != want {
			t.Errorf("%s = %v, want %s", field, p[field], want)
		}
	}
}

// TestNightlyLocaleStatusOfEverySpelling: a nightly repack's per-locale
// result is compared as text without regard to case, as the original did:
// every spelling of "success" and the text or number 0 is status 0; any
// other value, among them 0.0, true and null, is 2.
func TestNightlyLocaleStatusOfEverySpelling(t *testing.T) {
	tr := newTranslator(t)
	for _, c := range []struct {
		result string // the JSON of the locale's result
		want   int
	}{
		{`"Success"`, 0}, {`"SUCCESS"`, 0}, {`"success"`, 0}, {`"sUcCeSs"`, 0},
		{`"0"`, 0}, {`0`, 0}, {`-0`, 0},
		{`0.0`, 2}, {`"0.0"`, 2}, {`true`, 2}, {`false`, 2}, {`null`, 2},
		{`"2"`, 2}, {`2`, 2}, {`"Failed"`, 2}, {`""`, 2}, {`" Success"`, 2},
		{`"ſuccess"`, 2}, // a long s is not an s to Python's lower()
	} {
		t.Run(c.result, func(t *testing.T) {
			msg := raw(t, "build.mozilla-central-linux64-l10n-nightly-1.6.log_uploaded", 2,
				prop{"branch", "mozilla-central"}, prop{"platform", "linux64"}, prop{"product", "firefox"},
				prop{"locales", `{"ar": ` + c.result + `}`})
			outs, err := tr.Translate(msg)
			if err != nil || len(outs) != 1 {
				t.Fatalf("%d outputs, %v", len(outs), err)
			}
			if got := outs[0].Payload["status"]; got != c.want {
				t.Errorf("status %v, want %d", got, c.want)
			}
		})
	}
}

// TestLocaleResultsThatDifferOnlyInCaseAreRefused: results are compared
// without regard to case, so a table that gives two spellings of one word
// two statuses is a mistake start-up names.
func TestLocaleResultsThatDifferOnlyInCaseAreRefused(t *testing.T) {
	f, err := rules.Load("builtin:buildbot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	tables := maps.Clone(set.Tables())
	tables["repack_locale_status"] = map[string]any{"results": map[string]any{"Success": 0, "SUCCESS": 1}, "otherwise": 2}
	_, err = buildbot.New(translator.Params{Pipeline: "test", Tables: tables})
	if err == nil || !strings.Contains(err.Error(), "without regard to case") {
		t.Fatalf("New = %v, want an error about case", err)
	}
}
