package cli

import (
	"runtime"
	"testing"
)

func TestTuneProcsLeavesTheEnvironmentAlone(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })

	t.Setenv("GOMAXPROCS", "")
	tuneProcs()
	if got := runtime.GOMAXPROCS(0); got != defaultProcs {
		t.Errorf("GOMAXPROCS unset: %d threads, want %d", got, defaultProcs)
	}

	runtime.GOMAXPROCS(2)
	t.Setenv("GOMAXPROCS", "2")
	tuneProcs()
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("GOMAXPROCS set: tuneProcs changed it to %d", got)
	}
}
