package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workerProcess is a process that consumes the input: a "pulsetranslator
// run" replica, or the bare baseline worker.
type workerProcess struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
	// forget takes the process off the undo list once it is stopped.
	forget func()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startWorker starts argv with env added to this process's environment,
// on the CPUs cpus (a taskset list such as "1-3") unless cpus is empty.
func startWorker(cpus string, env []string, argv ...string) (*workerProcess, error) {
	p := &workerProcess{logs: &lockedBuffer{}, done: make(chan struct{})}
	binary := argv[0]
	if cpus != "" {
		// taskset execs the worker, which keeps its pid and the affinity.
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	p.forget = interrupted.add(p.stop)
	return p, nil
}

// stop sends SIGTERM, the translator's graceful stop, and waits.
func (p *workerProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.forget()
}

func (p *workerProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// printed returns the rest of the first line the process printed that
// starts with prefix.
func (p *workerProcess) printed(prefix string) (string, bool) {
	for line := range strings.Lines(p.logs.String()) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			return rest, true
		}
	}
	return "", false
}

// peakRSS reads the process's peak resident set size (VmHWM), in bytes.
func (p *workerProcess) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
