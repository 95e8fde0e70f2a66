package runner

import (
	"testing"
	"time"
)

// SetStuckReading sets, for the test t, how long a reading of the queues'
// depths may take before the queue it waits for is logged.
func SetStuckReading(t *testing.T, d time.Duration) {
	old := stuckReading
	stuckReading = d
	t.Cleanup(func() { stuckReading = old })
}

// SetCanaryInterval sets, for the test t, how often a canary goes through
// the wait queues.
func SetCanaryInterval(t *testing.T, d time.Duration) {
	old := canaryInterval
	canaryInterval = d
	t.Cleanup(func() { canaryInterval = old })
}
