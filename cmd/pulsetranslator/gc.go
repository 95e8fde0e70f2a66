package main

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
// (see the README's benchmarks). The soft limit keeps a heap that really
// grows (prefetch times large bodies) from growing five times as fast.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 128 << 20
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
