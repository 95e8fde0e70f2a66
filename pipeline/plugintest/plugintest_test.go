package plugintest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/plugintest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

func expected(t *testing.T, text string) plugintest.Expected {
	t.Helper()
	var e plugintest.Expected
	if err := json.Unmarshal([]byte(text), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCompareSaysWhatDiffers: a drop or a refusal of another class than
// the expected file names fails, one of the same class passes, and
// outputs that differ are reported field by field.
func TestCompareSaysWhatDiffers(t *testing.T) {
	drop := plugintest.Outcome{Dropped: []plugintest.Drop{{Class: "ignored_platform", Reason: "platform dolphin is ignored"}}}
	refusal := plugintest.Outcome{Refusal: &translator.Refusal{Class: "bad_platform", Reason: "x"}}
	for _, tc := range []struct {
		name     string
		got      plugintest.Outcome
		expected string
		want     []string
	}{
		{"any drop", drop, `{"dropped": true}`, nil},
		{"the drop's class", drop, `{"dropped": "ignored_platform"}`, nil},
		{"another drop class", drop, `{"dropped": "duplicate"}`, []string{"want a drop of class duplicate, got one of class ignored_platform"}},
		{"the refusal's class", refusal, `{"error": "bad_platform"}`, nil},
		{"another refusal class", refusal, `{"error": "no_branch"}`, []string{"want a refusal of class no_branch"}},
		{"a drop for a refusal", refusal, `{"dropped": true}`, []string{"refused: bad_platform"}},
		{"fields", plugintest.Outcome{Outputs: []plugintest.Output{{RoutingKey: "build.a", CC: []string{"route.x"}, Payload: map[string]any{"tree": "central", "buildid": "1", "extra": true}}}},
			`{"outputs": [{"routing_key": "build.a", "cc": ["route.y"], "payload": {"tree": "central", "buildid": "2", "gone": 1}}]}`,
			[]string{`output build.a: cc ["route.x"], want ["route.y"]`, `output build.a: payload.buildid is "1", want "2"`, `output build.a: payload.extra is true, not expected`, `output build.a: payload.gone is missing, want 1`}},
		{"an output too many", plugintest.Outcome{Outputs: []plugintest.Output{{RoutingKey: "build.a", Payload: map[string]any{}}, {RoutingKey: "build.b", Payload: map[string]any{}}}},
			`{"outputs": [{"routing_key": "build.a", "payload": {}}]}`, []string{"an output that is not expected: build.b"}},
		{"the same outputs, in another order", plugintest.Outcome{Outputs: []plugintest.Output{{RoutingKey: "b", Payload: map[string]any{"n": 2.0}}, {RoutingKey: "a", Payload: map[string]any{"n": 1.0}}}},
			`{"outputs": [{"routing_key": "a", "payload": {"n": 1}}, {"routing_key": "b", "payload": {"n": 2}}]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plugintest.Compare(tc.got, expected(t, tc.expected))
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("problem %q, want one with %q", got[i], tc.want[i])
				}
			}
		})
	}
	var e plugintest.Expected
	if err := json.Unmarshal([]byte(`{"dropped": 3}`), &e); err == nil {
		t.Error(`"dropped": 3 was accepted`)
	}
}
