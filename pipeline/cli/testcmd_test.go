package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedTestFilesPass runs "pulsetranslator test" on the declarative
// test files shipped with the rule files: the default pipeline's and the
// hg pushes example's.
func TestShippedTestFilesPass(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main([]string{"test", "../../rules"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"ok    ../../rules/buildbot_test.yaml", "ok    ../../rules/hgpushes_test.yaml"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestChangedExpectationFails: a shipped test file with one expectation
// changed (a status, a drop's class, a refusal's class, a CC route) fails,
// exit 1, naming the file, the line and the case, and saying field by
// field how the outcome differs.
func TestChangedExpectationFails(t *testing.T) {
	data, err := os.ReadFile("../../rules/buildbot_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := filepath.Abs("../../rules")
	text := strings.ReplaceAll(string(data), "file: ../", "file: "+filepath.Dir(rules)+"/")
	for _, c := range []struct{ from, to, want string }{
		{"{locale: ar, status: 0, repack: true}", "{locale: ar, status: 2, repack: true}", "payload.status is 0, want 2"},
		{"dropped: duplicate_finished", "dropped: ignored_platform", "want a drop of class ignored_platform, got one of class duplicate_finished"},
		{"error: no_build_url", "error: schema", "want a refusal of class schema"},
		{"route.platform.linux64]", "route.platform.linux32]", "route.platform.linux32"},
	} {
		changed := strings.Replace(text, c.from, c.to, 1)
		if changed == text {
			t.Fatalf("%q is not in the test file", c.from)
		}
		path := filepath.Join(t.TempDir(), "changed_test.yaml")
		if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := Main([]string{"test", path}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stdout.String(), "FAIL  "+path+"  5 of 6 cases") || !strings.Contains(stdout.String(), c.want) || !strings.Contains(stdout.String(), path+":") {
			t.Errorf("%s -> %s: exit %d\n%s%s", c.from, c.to, code, stdout.String(), stderr.String())
		}
	}
}

// TestTestFileMistakes: a test file with an unknown field, a case without
// an expectation or without a message says so, with the file and line.
func TestTestFileMistakes(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ text, want string }{
		"unknown field":    {"cases:\n  - name: x\n    bodyy: '{}'\n", "field bodyy not found"},
		"no expectation":   {"cases:\n  - name: x\n    body: '{}'\n", "say what the case expects"},
		"no message":       {"cases:\n  - name: x\n    error: malformed_json\n", "give the raw message"},
		"no cases":         {"pipeline: build\n", "no cases"},
		"missing pipeline": {"pipeline: nope\ncases:\n  - name: x\n    body: '{}'\n    error: x\n", "nope"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+"_test.yaml")
		os.WriteFile(path, []byte(c.text), 0o600)
		var stdout, stderr bytes.Buffer
		if code := Main([]string{"test", path}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), c.want) || !strings.Contains(stdout.String(), path) {
			t.Errorf("%s: exit %d\n%s%s", name, code, stdout.String(), stderr.String())
		}
	}
}
