package runner

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// throttle logs repeated events of a kind at most once per interval: the
// first at once, then, while more come, one line per interval, with
// "suppressed": how many events of the kind had no line of their own
// since the last (a line written by the flush shows the latest of them).
// A flood of bad messages or a failing host costs a few lines, not one
// per message.
type throttle struct {
	out      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	kinds map[string]*eventKind
}

// eventKind is what the throttle remembers of one kind of event.
type eventKind struct {
	level slog.Level
	msg   string
	// args are the latest event's; suppressed counts the events since
	// the last line; logged is when that line was written.
	args       []any
	suppressed int
	logged     time.Time
}

// maxKinds bounds the kinds remembered; past it, events are grouped by
// message alone.
const maxKinds = 1024

func newThrottle(log *slog.Logger, interval time.Duration) *throttle {
	return &throttle{out: log, interval: interval, now: time.Now, kinds: map[string]*eventKind{}}
}

// log logs an event of kind key (events of one kind are the same event,
// for example the same class of refusal, or failures of the same host).
func (t *throttle) log(level slog.Level, key, msg string, args ...any) {
	if !t.out.Enabled(context.Background(), level) {
		return
	}
	now := t.now()
	t.mu.Lock()
	k := t.kinds[key]
	if k == nil {
		if len(t.kinds) >= maxKinds {
			t.prune(now)
		}
		if len(t.kinds) >= maxKinds {
			key = "message " + msg
			k = t.kinds[key]
		}
	}
	if k == nil {
		t.kinds[key] = &eventKind{level: level, msg: msg, logged: now}
		t.mu.Unlock()
		t.out.Log(context.Background(), level, msg, args...)
		return
	}
	if now.Sub(k.logged) < t.interval {
		k.suppressed++
		k.args = args
		t.mu.Unlock()
		return
	}
	repeated := k.suppressed
	k.suppressed, k.args, k.logged = 0, nil, now
	t.mu.Unlock()
	if repeated > 0 {
		args = append(args, "suppressed", repeated)
	}
	t.out.Log(context.Background(), level, msg, args...)
}

// flush writes a line for every kind with events not yet written whose
// interval has passed, or for all of them when all is true.
func (t *throttle) flush(all bool) {
	now := t.now()
	type line struct {
		level slog.Level
		msg   string
		args  []any
	}
	var lines []line
	t.mu.Lock()
	for _, k := range t.kinds {
		if k.suppressed > 0 && (all || now.Sub(k.logged) >= t.interval) {
			lines = append(lines, line{k.level, k.msg, append(k.args, "suppressed", k.suppressed)})
			k.suppressed, k.args, k.logged = 0, nil, now
		}
	}
	t.prune(now)
	t.mu.Unlock()
	for _, l := range lines {
		t.out.Log(context.Background(), l.level, l.msg, l.args...)
	}
}

// prune forgets kinds quiet for ten intervals. t.mu is held.
func (t *throttle) prune(now time.Time) {
	for key, k := range t.kinds {
		if k.suppressed == 0 && now.Sub(k.logged) >= 10*t.interval {
			delete(t.kinds, key)
		}
	}
}

// run flushes every interval until ctx ends.
func (t *throttle) run(ctx context.Context) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush(false)
		case <-ctx.Done():
			return
		}
	}
}
