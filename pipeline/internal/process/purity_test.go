package process_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureStepsImportNoBroker: the pure steps (process, with the config,
// the Pulse names and the reference they use), the plugin contract
// (pipeline/translator) and the golden tests of a plugin
// (pipeline/plugintest) import nothing of Watermill, AMQP, Prometheus or
// net/http, so that translate, check, docs and a plugin's tests build
// without them.
func TestPureStepsImportNoBroker(t *testing.T) {
	for _, pkg := range []string{"./", "../config", "../pulse", "../reference", "../../translator", "../../plugintest"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed %d packages; the test reads nothing", pkg, len(deps))
		}
		for _, dep := range deps {
			for _, banned := range []string{"ThreeDotsLabs/watermill", "rabbitmq/amqp091-go", "prometheus", "net/http"} {
				if strings.Contains(dep, banned) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
