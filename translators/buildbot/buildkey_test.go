package buildbot

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// buildKeyTrees and buildKeyPlatforms are trees and platforms the key
// tests combine, real ones and ones that overlap the pattern's words.
var (
	buildKeyTrees     = []string{"mozilla-central", "mozilla-aurora", "release-mozilla-beta", "mozilla", "try", "b2g-inbound", "", "a.b"}
	buildKeyPlatforms = []string{"linux64", "linux", "win32", "macosx64", "android-api-11", "linux64-asan", "xulrunner", "", "1"}
)

// buildKeys are the corpus's routing keys and made-up ones that try each
// choice of the pattern: prefixes, xulrunner, separators, several
// .<number>.<event> parts, missing digits, newlines and trailers.
func buildKeys(t testing.TB) []string {
	keys := []string{
		"", "build.", "build.mozilla-central-linux64.1.log_uploaded", "build.mozilla-central-linux64.1.finished",
		"build.release-mozilla-beta-linux_repack_1.4.log_uploaded", "build.release-release-mozilla-beta-linux.4.finished",
		"build.jetpack-mozilla-central-macosx64-debug.7.log_uploaded", "build.b2g_b2g-inbound_win32_gecko.3.log_uploaded",
		"build.mozilla-central-xulrunner-linux64-nightly.9.log_uploaded", "build.mozilla-central-xulrunner_xulrunner-x.9.log_uploaded",
		"build.mozilla-central|linux64|l10n-nightly-1.12.log_uploaded", "build.mozilla-central-linux64.x.12.finished.2.log_uploaded",
		"build.mozilla-central-linux64..12.log_uploaded", "build.mozilla-central-linux64.12.log_uploadedX", "build.try-linux.1.finishe",
		"build.try-linux-a.b.1.finished.tail", "build.try-linux-a\nb.1.finished", "build.try-linux\n.1.finished", "build.try-linux.1.\nfinished",
		"build.try-linux.1.2.finished", "build.try-linux..1.finished", "build.try-linux.123", "build.try-linux-.5.log_uploaded",
		"build.try--linux.5.log_uploaded", "build.try-1.1.finished", "build.try-11.1.finished", "build.a.b-linux.1.finished",
		"build.mozilla-aurora-linux-l10n-dep.497.log_uploaded", "build.try-linux-é.1.finished", "build.try-linux-\xff.1.finished",
		"xbuild.try-linux.1.finished", "build.try-linux.1.log_uploaded.1.finished",
	}
	paths, _ := filepath.Glob(filepath.Join("testdata", "corpus", "buildbot", "*", "*"))
	for _, p := range paths {
		keys = append(keys, filepath.Base(p))
	}
	if len(paths) == 0 {
		t.Fatal("no corpus messages")
	}
	return keys
}

// patternMatch is what buildPattern's regular expression matches.
func patternMatch(key, tree, platform string) ([10]string, bool) {
	re := regexp.MustCompile(fmt.Sprintf(buildPattern, regexp.QuoteMeta(tree), regexp.QuoteMeta(platform)))
	var m [10]string
	found := re.FindStringSubmatch(key)
	copy(m[:], found)
	return m, found != nil
}

// TestBuildKeyMatchesPattern holds matchBuildKey to the regular expression
// on every combination of key, tree and platform.
func TestBuildKeyMatchesPattern(t *testing.T) {
	matched := 0
	for _, key := range buildKeys(t) {
		for _, tree := range buildKeyTrees {
			for _, platform := range buildKeyPlatforms {
				got, ok := matchBuildKey(key, tree, platform)
				want, wantOK := patternMatch(key, tree, platform)
				if ok != wantOK || got != want {
					t.Errorf("key %q, tree %q, platform %q:\n got  %v %q\n want %v %q", key, tree, platform, ok, got, wantOK, want)
				}
				if ok {
					matched++
				}
			}
		}
	}
	if matched < 100 {
		t.Errorf("only %d combinations matched; the cases no longer try the pattern's choices", matched)
	}
}

// FuzzBuildKeyMatchesPattern holds matchBuildKey to the regular expression
// on any key, tree and platform.
func FuzzBuildKeyMatchesPattern(f *testing.F) {
	for _, key := range buildKeys(f) {
		f.Add(key, "mozilla-central", "linux64")
		if i := strings.IndexAny(key, "-_|"); i > len("build.") {
			f.Add(key, key[len("build."):i], "linux")
		}
	}
	f.Fuzz(func(t *testing.T, key, tree, platform string) {
		if !utf8.ValidString(tree) || !utf8.ValidString(platform) {
			t.Skip("the pattern cannot be compiled of invalid UTF-8")
		}
		got, ok := matchBuildKey(key, tree, platform)
		want, wantOK := patternMatch(key, tree, platform)
		if ok != wantOK || got != want {
			t.Fatalf("key %q, tree %q, platform %q:\n got  %v %q\n want %v %q", key, tree, platform, ok, got, wantOK, want)
		}
	})
}
