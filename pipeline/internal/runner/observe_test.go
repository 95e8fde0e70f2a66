package runner

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
)

// TestRecentKeepsTheLastInOrder: the live page shows the last recentLen
// outputs, oldest first, however many came before, and adding to a full
// window allocates nothing.
func TestRecentKeepsTheLastInOrder(t *testing.T) {
	var rc recent
	if got := rc.outputs.last(); got != nil {
		t.Fatalf("an empty window shows %v, want nothing", got)
	}
	for n := 1; n <= 5*recentLen+3; n++ {
		rc.addOutputs([]broker.Outgoing{{RoutingKey: strings.Repeat("k", n)}}, "source")
		got := rc.outputs.last()
		if want := min(n, recentLen); len(got) != want {
			t.Fatalf("after %d outputs the window shows %d, want %d", n, len(got), want)
		}
		for i, o := range got {
			if want := n - len(got) + 1 + i; len(o.RoutingKey) != want {
				t.Fatalf("after %d outputs, item %d is output %d, want %d", n, i, len(o.RoutingKey), want)
			}
		}
	}
	o := RecentOutput{RoutingKey: "k"}
	// AllocsPerRun rounds down: each run adds enough to move the items.
	if allocs := testing.AllocsPerRun(10, func() {
		for range 2 * recentLen {
			rc.outputs.add(o)
		}
	}); allocs != 0 {
		t.Errorf("adding %d to a full window allocates %.0f times, want 0", 2*recentLen, allocs)
	}
}

// TestRecentPreviewIsCut: an output's preview is at most previewLen bytes
// of its body, cut on a rune boundary and marked.
func TestRecentPreviewIsCut(t *testing.T) {
	var rc recent
	body := strings.Repeat("é", previewLen) // two bytes a rune
	rc.addOutputs([]broker.Outgoing{{Body: []byte(body)}, {Body: []byte(`{"short":1}`)}, {Body: []byte(`{"payload":{"tree":"x"},"_meta":{}}`), MessageID: "id-1"}}, "build.x.1.log_uploaded")
	got := rc.outputs.last()
	long, short := got[0].Preview, got[1].Preview
	if enveloped := got[2]; enveloped.Preview != `{"tree":"x"},"_meta":{}}` || enveloped.MessageID != "id-1" || enveloped.Source != "build.x.1.log_uploaded" {
		t.Errorf("an enveloped output is shown as %+v; want its payload first, its id and its source", enveloped)
	}
	if len(long) > previewLen || !utf8.ValidString(long) || !strings.HasSuffix(long, "…") || !strings.HasPrefix(body, strings.TrimSuffix(long, "…")) {
		t.Errorf("preview of a long body is %d bytes %q, want at most %d valid bytes of its start, ending in …", len(long), long, previewLen)
	}
	if short != `{"short":1}` {
		t.Errorf("preview of a short body is %q, want it whole", short)
	}
}
