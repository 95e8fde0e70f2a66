// Package backoff spaces out retries: each wait grows from Initial to
// Max, doubling, with random jitter so that many waiters (replicas, or
// messages of one replica) do not retry in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a doubling backoff with jitter.
type Policy struct {
	// Initial is the first wait, before jitter. Default 100ms.
	Initial time.Duration
	// Max caps every wait. Default 30s.
	Max time.Duration
}

// Delay is the wait before retry number attempt (0 for the first retry):
// Initial doubled attempt times, capped at Max, then drawn at random from
// its upper half, so that it is never less than half the nominal wait.
func (p Policy) Delay(attempt int) time.Duration {
	initial, limit := p.Initial, p.Max
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if limit <= 0 {
		limit = 30 * time.Second
	}
	d := initial
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// Wait waits Delay(attempt), or until ctx ends, which it returns.
func (p Policy) Wait(ctx context.Context, attempt int) error {
	return Sleep(ctx, p.Delay(attempt))
}

// Sleep waits d, or until ctx ends, which it returns.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
