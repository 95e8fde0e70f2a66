package gate

import (
	"sync"
	"time"
)

// workerIdle is how long a worker goroutine waits for more work before
// it ends.
const workerIdle = 30 * time.Second

// workers runs functions on goroutines that are kept for the next one:
// an HTTP request grows a goroutine's stack to several kilobytes, and a
// new goroutine per check would grow (copy) it every time. A worker ends
// after workerIdle without work, so an idle checker holds none. The
// checker's slots bound how many run at once; workers only reuse them.
type workers struct {
	jobs chan func()
	once sync.Once
}

// run runs job on an idle worker, or on a new one when none is idle.
func (w *workers) run(job func()) {
	w.once.Do(func() { w.jobs = make(chan func()) })
	select {
	case w.jobs <- job:
	default:
		go w.serve(job)
	}
}

// serve runs job, then the jobs handed to it, until none comes for
// workerIdle.
func (w *workers) serve(job func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(workerIdle)
		select {
		case job = <-w.jobs:
		case <-idle.C:
			return
		}
	}
}
