package cli

import (
	"os"
	"runtime"
)

// defaultProcs is how many threads run Go code at once in "run" when the
// environment does not set GOMAXPROCS.
//
// A consumer's messages come from broker queues, each a single process
// in RabbitMQ that spends more CPU on a message than the translator does
// (see the README's benchmarks), so one CPU keeps pace with what a queue
// delivers. More let the runtime's idle threads spin looking for work,
// and wake one another at each hand-off between goroutines; where the
// translator shares its CPUs with the broker, that time is the broker's.
// On two CPUs shared with the broker, one thread cut the translator's CPU
// per input by a fifth and moved 7% more messages (medians of four
// alternating pairs of runs on each mix; more in seven pairs of eight).
// Set GOMAXPROCS, or run replicas, for more.
const defaultProcs = 1

// tuneProcs applies defaultProcs unless GOMAXPROCS says otherwise.
func tuneProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(defaultProcs)
	}
}
