package runner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// TestWaitNackIsFullOnlyAtMaxLength: a quorum wait queue's nack parks
// the message as wait_queue_full only when the queue holds its
// max_length; a nack from a queue below it (one that lost its leader) or
// one that cannot be counted is tried again. A classic wait queue nacks
// only at its caps (max_length or max_bytes): its nack is always full.
func TestWaitNackIsFullOnlyAtMaxLength(t *testing.T) {
	p := config.PipelineConfig{Name: "build", Queue: config.QueueConfig{Type: config.QueueQuorum}, Wait: config.WaitConfig{Tiers: []time.Duration{time.Second}, MaxLength: 5}}
	g, err := newReadinessGate("client", p, true)
	if err != nil {
		t.Fatal(err)
	}
	depth, depthErr := 0, error(nil)
	var asked []string
	run := &pipelineRun{cfg: p, topology: &broker.Topology{Wait: g.topology()}}
	g.use(&flow{p: run, throttle: newThrottle(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Minute)}, func(_ context.Context, queue string) (int, error) {
		asked = append(asked, queue)
		return depth, depthErr
	})
	ctx := context.Background()
	tier := pulse.TierName(time.Second)
	for _, c := range []struct {
		depth int
		err   error
		full  bool
	}{{4, nil, false}, {5, nil, true}, {0, errors.New("channel closed"), false}} {
		depth, depthErr = c.depth, c.err
		if got := g.full(ctx, tier); got != c.full {
			t.Errorf("a wait queue of max_length 5 holding %d (count error %v): full %v, want %v", c.depth, c.err, got, c.full)
		}
	}
	if want := pulse.WaitQueue("client", "build", time.Second); len(asked) == 0 || asked[0] != want {
		t.Errorf("counted %v, want %s", asked, want)
	}
	g.queueType = config.QueueClassic
	depth, depthErr, asked = 0, nil, nil
	if !g.full(ctx, tier) || len(asked) != 0 {
		t.Errorf("a classic wait queue's nack: full %v after counting %v; want full, uncounted", g.full(ctx, tier), asked)
	}
}
