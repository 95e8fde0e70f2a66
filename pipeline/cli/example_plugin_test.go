package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// examplePlugin is a translator plugin in a module of its own, with its own
// main: the proof that a plugin needs no fork of this repository.
const examplePlugin = "../../translators/examples/taskdone"

// TestExamplePluginModule builds the example plugin's module as its author
// would (go vet, go test, go build of its own main, with its go.sum as
// committed), then runs its binary's check and translate commands.
func TestExamplePluginModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	dir, err := filepath.Abs(examplePlugin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "taskdone-translator")
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// Its own module: no workspace, and go.sum as committed.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), examplePlugin, err, out)
		}
		return string(out)
	}
	goCmd("vet", "./...")
	if out := goCmd("test", "-count=1", "-v", "./..."); !strings.Contains(out, "--- PASS: TestGolden") {
		t.Fatalf("the example's golden test did not run:\n%s", out)
	}
	goCmd("build", "-o", bin, "./cmd/taskdone-translator")

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("taskdone-translator %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	// Without --config, the plugin's own config; the usage text and the
	// messages name the plugin's binary.
	if out := run("check"); !strings.Contains(out, "taskdone-translator's default config") || !strings.Contains(out, "pipeline tasks: translator taskdone") {
		t.Errorf("check without --config does not run the plugin's default config:\n%s", out)
	}
	help := run("help")
	if !strings.Contains(help, "usage: taskdone-translator <command>") || strings.Contains(help, "usage: pulsetranslator") {
		t.Errorf("the plugin's usage text does not name it:\n%s", help)
	}
	unknown := exec.Command(bin, "nope")
	if out, _ := unknown.CombinedOutput(); !strings.Contains(string(out), "taskdone-translator: unknown command \"nope\"") {
		t.Errorf("an unknown command: %s", out)
	}
	check := run("check", "--config", "config.yaml")
	for _, want := range []string{"translators: taskdone", "schemas: taskdone/task.json", "builtin:taskdone.yaml"} {
		if !strings.Contains(check, want) {
			t.Errorf("check does not say %q:\n%s", want, check)
		}
	}
	// The plugin binary carries only its own plugin: the buildbot
	// translator of this repository is not in it.
	if strings.Contains(check, "buildbot") {
		t.Errorf("the example's binary carries this repository's plugins:\n%s", check)
	}

	published := map[string]bool{}
	var dropped, refused int
	sc := bufio.NewScanner(strings.NewReader(run("translate", "--config", "config.yaml", "testdata/corpus")))
	for sc.Scan() {
		var line struct {
			RoutingKey string                   `json:"routing_key"`
			Payload    map[string]any           `json:"payload"`
			Dropped    *struct{ Reason string } `json:"dropped"`
			Error      *struct{ Class string }  `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("translate printed %q: %v", sc.Text(), err)
		}
		switch {
		case line.RoutingKey != "":
			published[line.RoutingKey] = true
		case line.Dropped != nil:
			dropped++
		case line.Error != nil && line.Error.Class == "no_such_run":
			refused++
		}
	}
	want := []string{
		"completed.gecko-t.t-linux-xlarge.p82W33rCQYKVByX1173B6w",
		"failed.gecko-3.b-linux.4HG73LU3RKS-fb0XqdFxkw",
		"exception.gecko-t.t-win10-64.FuWfrqHAQIGhdc7EPpfK8w",
	}
	for _, key := range want {
		if !published[key] {
			t.Errorf("translate did not publish %s (published %v)", key, published)
		}
	}
	if len(published) != len(want) || dropped != 1 || refused != 1 {
		t.Errorf("translate: %d published, %d dropped, %d refused; want 3, 1, 1", len(published), dropped, refused)
	}
}
