package bench

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux that matters).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user and system) a process has used, or 0
// when it cannot be read or pid is 0 (no process).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
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

// cpuMeter measures the CPU time of the broker's nodes, of pulsebench
// itself and of the log server over a run.
type cpuMeter struct {
	brokers                 []int
	logs                    int
	brokerAt, selfAt, logAt time.Duration
}

// startCPU starts measuring the brokers' processes and logs, the log
// server's (0 when there is none).
func startCPU(brokers []int, logs int) cpuMeter {
	return cpuMeter{brokers: brokers, logs: logs, brokerAt: cpuTimes(brokers), selfAt: cpuTime(os.Getpid()), logAt: cpuTime(logs)}
}

// stop returns the CPU time the broker's nodes, pulsebench and the log
// server used since start.
func (m cpuMeter) stop() (broker, self, logs time.Duration) {
	return cpuTimes(m.brokers) - m.brokerAt, cpuTime(os.Getpid()) - m.selfAt, cpuTime(m.logs) - m.logAt
}

func cpuTimes(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		sum += cpuTime(pid)
	}
	return sum
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

// brokerPIDs finds the local processes that listen on the ports of the
// broker URLs (one per node of a local cluster): what the broker's CPU is
// measured over. It falls back to the one local RabbitMQ (brokerPID) when
// none is found, and is empty for a broker elsewhere.
func brokerPIDs(brokers string) []int {
	inodes := map[string]bool{}
	for _, raw := range config.ParseConnections(brokers) {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		port := u.Port()
		if port == "" {
			port = "5672"
		}
		for inode := range listeningInodes(port) {
			inodes[inode] = true
		}
	}
	var pids []int
	if len(inodes) > 0 {
		fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
		seen := map[int]bool{}
		for _, fd := range fds {
			target, err := os.Readlink(fd)
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(fd))))
				if !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
		}
	}
	if len(pids) == 0 {
		if pid := brokerPID(); pid != 0 {
			pids = []int{pid}
		}
	}
	return pids
}

// listeningInodes are the socket inodes listening on a TCP port (IPv4 or
// IPv6), from /proc/net/tcp{,6}.
func listeningInodes(port string) map[string]bool {
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil
	}
	hexPort := fmt.Sprintf(":%04X", p)
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is f[1], st is f[3] (0A: LISTEN), inode is f[9].
			if len(f) > 9 && strings.HasSuffix(f[1], hexPort) && f[3] == "0A" {
				inodes[f[9]] = true
			}
		}
	}
	return inodes
}
