package brokertest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// DebianTool finds command, which Debian's package pkg installs. With
// CI=true a missing one is installed with apt-get (aptFlags go before the
// package), or the test fails; elsewhere the test is skipped.
func DebianTool(t testing.TB, command, pkg string, aptFlags ...string) string {
	t.Helper()
	if path, err := exec.LookPath(command); err == nil {
		return path
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("no %s (apt-get install %s)", command, pkg)
	}
	install := strings.Join(append(append([]string{"apt-get install -y -q"}, aptFlags...), pkg), " ")
	out, err := exec.Command("sh", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive "+install).CombinedOutput()
	path, lookErr := exec.LookPath(command)
	if err != nil || lookErr != nil {
		t.Fatalf("CI=true and %s is missing; installing it failed: %v\n%s", command, err, out)
	}
	return path
}
