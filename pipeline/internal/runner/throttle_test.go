package runner

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestThrottleLogsOncePerInterval: a kind of event is logged at once,
// then at most once per interval with the count of those it held back;
// other kinds are not held back by it, and a flush writes what is due.
func TestThrottleLogsOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	th := newThrottle(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second)
	now := time.Unix(1000, 0)
	th.now = func() time.Time { return now }
	for i := range 1000 {
		th.log(slog.LevelInfo, "park malformed_json", "parked", "n", i)
		th.log(slog.LevelWarn, "check host-a", "artifact check failed", "n", i)
	}
	if lines := strings.Count(buf.String(), "\n"); lines != 2 {
		t.Fatalf("2000 events of two kinds in one instant: %d lines, want 2:\n%s", lines, buf.String())
	}
	now = now.Add(11 * time.Second)
	th.log(slog.LevelInfo, "park malformed_json", "parked", "n", 1000)
	if !strings.Contains(buf.String(), "n=1000 suppressed=999") {
		t.Errorf("the line after the interval does not count the 999 held back:\n%s", buf.String())
	}
	th.flush(false)
	if !strings.Contains(buf.String(), `msg="artifact check failed" n=999 suppressed=999`) {
		t.Errorf("the flush does not write the held-back host failures:\n%s", buf.String())
	}
	before := buf.Len()
	th.flush(true)
	if buf.Len() != before {
		t.Errorf("a flush with nothing held back wrote:\n%s", buf.String()[before:])
	}
	// Past maxKinds distinct keys, events group by message.
	for i := range 3 * maxKinds {
		th.log(slog.LevelInfo, "check host-"+strings.Repeat("x", i%50)+string(rune(i)), "artifact check failed", "i", i)
	}
	if lines := strings.Count(buf.String()[before:], "\n"); lines > maxKinds+1 {
		t.Errorf("%d distinct keys gave %d lines; the kinds remembered must stay bounded", 3*maxKinds, lines)
	}
}
