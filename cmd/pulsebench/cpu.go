package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux that matters).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user and system) a process has used, or 0
// when it cannot be read.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces; fields follow it.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// brokerPID finds a local RabbitMQ node's Erlang VM (beam.smp), or 0 when
// the broker runs elsewhere or is not visible.
func brokerPID() int {
	paths, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range paths {
		comm, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(comm)) != "beam.smp" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if strings.Contains(string(cmdline), "rabbit") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

// cpuMeter measures the CPU time of the broker and of pulsebench itself
// over a run.
type cpuMeter struct {
	broker           int
	brokerAt, selfAt time.Duration
}

func startCPU(broker int) cpuMeter {
	return cpuMeter{broker: broker, brokerAt: cpuTime(broker), selfAt: cpuTime(os.Getpid())}
}

// stop returns the CPU time the broker and pulsebench used since start.
func (m cpuMeter) stop() (broker, self time.Duration) {
	if m.broker != 0 {
		broker = cpuTime(m.broker) - m.brokerAt
	}
	return broker, cpuTime(os.Getpid()) - m.selfAt
}

// isolate pins the local broker (every thread of its Erlang VM) and this
// process to CPU 0, and returns the CPUs left for the worker processes
// and a function that restores the broker's and this process's CPUs.
func isolate() (restore func(), workerCPUs string, err error) {
	n := runtime.NumCPU()
	if n < 2 {
		return nil, "", fmt.Errorf("this machine has %d CPU; isolating needs 2", n)
	}
	broker := brokerPID()
	if broker == 0 {
		return nil, "", fmt.Errorf("no local RabbitMQ (beam.smp) to pin; isolate only works with the broker on this machine")
	}
	var undo []func()
	restore = func() {
		for _, f := range undo {
			f()
		}
	}
	for _, pid := range []int{broker, os.Getpid()} {
		mask, err := affinity(pid)
		if err != nil {
			restore()
			return nil, "", err
		}
		if err := taskset("-a", "-p", "-c", "0", strconv.Itoa(pid)); err != nil {
			restore()
			return nil, "", err
		}
		undo = append(undo, func() { _ = taskset("-a", "-p", mask, strconv.Itoa(pid)) })
	}
	if n == 2 {
		return restore, "1", nil
	}
	return restore, fmt.Sprintf("1-%d", n-1), nil
}

// affinity returns a process's CPU mask as taskset prints it (hex).
func affinity(pid int) (string, error) {
	out, err := exec.Command("taskset", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return "", fmt.Errorf("taskset -p %d: %w", pid, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", fmt.Errorf("taskset -p %d printed nothing", pid)
	}
	return f[len(f)-1], nil
}

func taskset(args ...string) error {
	if out, err := exec.Command("taskset", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
