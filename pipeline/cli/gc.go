package cli

import (
	"os"
	"runtime/debug"
)

// Garbage collector settings for "run" when the environment sets none.
//
// A translator's live heap is small, since the prefetch bounds the
// messages in hand, while nearly every byte it allocates is a message's
// and dies when the message is acknowledged. With Go's default (GOGC=100)
// the collector then runs every few hundred messages and takes about a
// tenth of the process's CPU. GOGC=400 lets the heap grow to five times
// the live data, which halves that, at about 10 MiB more resident memory
// (see the README's benchmarks). The soft limit holds the heap near 48
// MiB: with the default prefetch, Buildbot messages keep about 10 MiB
// live, so the collector runs about as often as GOGC=400 alone makes it,
// and the process stays under 64 MiB resident with any backlog (55.5 MiB
// measured under 100,000 queued, against 61.8 with a 128 MiB limit). A
// pipeline with a larger prefetch or larger messages needs a larger
// GOMEMLIMIT, or the collector runs more often.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 48 << 20
)

// tuneGC applies the defaults above unless GOGC or GOMEMLIMIT says
// otherwise.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
