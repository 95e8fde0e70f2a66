package bench

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// undoList holds what must be undone when pulsebench is stopped by a
// signal in the middle of a run: the worker processes to stop, the
// benchmark's queues and exchanges to delete, the broker's CPUs to give
// back. A normal return undoes each itself and takes it off the list.
type undoList struct {
	mu    sync.Mutex
	next  int
	funcs map[int]func()
}

// interrupted is the benchmark's undo list.
var interrupted undoList

// add puts f on the list and returns what takes it off.
func (u *undoList) add(f func()) (remove func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.funcs == nil {
		u.funcs = map[int]func(){}
	}
	id := u.next
	u.next++
	u.funcs[id] = f
	return func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		delete(u.funcs, id)
	}
}

// run calls everything on the list, the newest first, and empties it.
func (u *undoList) run() {
	u.mu.Lock()
	funcs := u.funcs
	u.funcs = nil
	newest := u.next
	u.mu.Unlock()
	for id := newest - 1; id >= 0; id-- {
		if f, ok := funcs[id]; ok {
			f()
		}
	}
}

// undoOnSignal makes SIGINT and SIGTERM run the undo list, then exit with
// status 130, instead of leaving translators running, the benchmark's
// queues on the broker and, with -isolate, the broker on one CPU.
func undoOnSignal(stderr io.Writer) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-signals
		fmt.Fprintf(stderr, "pulsebench: %s: stopping the workers and removing the benchmark's queues\n", s)
		interrupted.run()
		os.Exit(130)
	}()
}
