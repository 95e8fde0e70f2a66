package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayGrowsWithJitterAndCap(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	for attempt, nominal := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		nominal *= time.Millisecond
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(attempt)
			if d < nominal/2 || d > nominal {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, nominal/2, nominal)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: only %d distinct delays in 200 draws; the jitter is missing", attempt, len(seen))
		}
	}
	if d := p.Delay(1 << 20); d > time.Second {
		t.Errorf("a huge attempt number gives %s, past the cap", d)
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	began := time.Now()
	if err := (Policy{Initial: time.Hour, Max: time.Hour}).Wait(ctx, 0); err == nil {
		t.Fatal("Wait returned nil on a cancelled context")
	}
	if time.Since(began) > time.Second {
		t.Fatal("Wait did not return at once on a cancelled context")
	}
}
