package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
)

// TestDemo runs the demo on the local broker, as a newcomer's first
// command: every raw message is accounted for (eleven outputs, one of them
// after waiting for its log, one refusal parked, one drop), and it exits.
func TestDemo(t *testing.T) {
	brokertest.Require(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"demo", "--exit", "--http", "127.0.0.1:0", "--connection", brokertest.AdminURL(), "--late", "2s"}, &stdout, &stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	for _, want := range []string{
		"live    http://127.0.0.1:",
		"out      build.mozilla-central.linux64.opt.mozilla-central-linux64",
		"waiting  a build's log is not there yet",
		"out      build.mozilla-central.win32.opt.mozilla-central-win32",
		"parked   no_build_url:",
		"dropped  a duplicate .finished notice",
		"5 raw messages gave 11 outputs; 1 parked",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if strings.Contains(out, ":guest@") {
		t.Error("the demo shows the password")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}
