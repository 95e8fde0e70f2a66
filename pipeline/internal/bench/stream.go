package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// artifactHosts are the hosts of the corpus' artifact URLs.
var artifactHosts = []string{"archive.mozilla.org", "ftp.mozilla.org", "stage.mozilla.org"}

// logServer answers every artifact check of a benchmark: 200, no body,
// for any request. It stands for a remote artifact host, so it runs in a
// process of its own (pulsebench -serve-logs): its CPU is not counted as
// pulsebench's, and with -isolate it runs on the workers' CPUs, not on
// the broker's, where the translator's checks would take the broker's
// time and the baseline's (which makes none) would not. It is the least
// an HTTP/1.1 server can be: it reads each request's head and writes a
// fixed answer, keeping the connection.
type logServer struct {
	url  string
	proc *workerProcess
}

// Lines the -serve-logs process prints: its URL once it listens, and the
// checks it answered when it stops.
const (
	logServerListening = "log server listening on "
	logServerAnswered  = "log server answered "
)

// startLogServer starts a log server process on the CPUs cpus (all when
// empty) and returns once it listens.
func startLogServer(cpus string) (*logServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	proc, err := startWorker(cpus, nil, self, Command, "-serve-logs")
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !proc.exited(); time.Sleep(10 * time.Millisecond) {
		if url, ok := proc.printed(logServerListening); ok {
			return &logServer{url: url, proc: proc}, nil
		}
	}
	proc.stop()
	return nil, fmt.Errorf("the log server did not start:\n%s", proc.logs.String())
}

// stop stops the log server and returns how many checks it answered.
func (l *logServer) stop() int64 {
	l.proc.stop()
	n, ok := l.proc.printed(logServerAnswered)
	if !ok {
		return -1
	}
	count, _ := strconv.ParseInt(n, 10, 64)
	return count
}

// serveLogs is the -serve-logs process: a log server on a free local
// port, until SIGTERM.
func serveLogs() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var checks atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go answerChecks(conn, &checks)
		}
	}()
	fmt.Println(logServerListening + "http://" + ln.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	_ = ln.Close()
	fmt.Println(logServerAnswered + strconv.FormatInt(checks.Load(), 10))
	return nil
}

// answerChecks answers the requests of one connection.
func answerChecks(conn net.Conn, checks *atomic.Int64) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	for {
		// A request's head ends with an empty line; HEAD and GET have
		// no body.
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
		}
		checks.Add(1)
		if _, err := conn.Write(answer); err != nil {
			return
		}
	}
}

// output is one normalized message an input must give, as the translator
// publishes it: routing key, CC and body. The baseline publishes exactly
// these bodies.
type output struct {
	id         string
	routingKey string
	cc         []string
	body       []byte
}

// stream is n distinct raw messages cycled from the corpus files of the
// mix, and the outputs each must give.
type stream struct {
	keys    []string
	bodies  [][]byte
	outputs [][]output
	// parks holds, for each input the translator refuses, the headers its
	// copy in the dead queue carries (nil for the others): the baseline
	// parks those inputs as the translator does, persistent and confirmed.
	parks []amqp.Table
	// input maps an output's message id to its input's index.
	input map[string]int
	// total is the number of outputs; parked the number of refused inputs.
	total, parked int
}

// newStream reads the corpus files under dir that match mix (a glob
// relative to dir), makes n distinct messages of them (each gets a field
// the translator ignores), and computes their outputs with the pipeline's
// own processor.
//
// With a gateURL, every artifact URL of an input points under it, at a
// path of its own (gateURL/c<i>/<host>/…), so that the readiness gate
// checks each input's log.
func newStream(cfg *config.Config, dir, mix string, n int, gateURL string) (*stream, error) {
	paths, err := filepath.Glob(filepath.Join(dir, mix))
	if err != nil {
		return nil, fmt.Errorf("--mix %q: %w", mix, err)
	}
	var files []string
	for _, p := range paths {
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no corpus files match %s", filepath.Join(dir, mix))
	}
	shipped, err := process.Ship(translator.Default)
	if err != nil {
		return nil, err
	}
	p := cfg.Pipelines[0]
	proc, err := process.NewProcessor(p, translator.Default, shipped)
	if err != nil {
		return nil, err
	}
	raws := make([][]byte, len(files))
	keys := make([]string, len(files))
	for i, f := range files {
		if raws[i], err = os.ReadFile(f); err != nil {
			return nil, err
		}
		var m struct {
			Meta struct {
				RoutingKey string `json:"routing_key"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal(raws[i], &m); err != nil || m.Meta.RoutingKey == "" || raws[i][0] != '{' {
			return nil, fmt.Errorf("%s: not a raw pulse message with _meta.routing_key", f)
		}
		keys[i] = m.Meta.RoutingKey
	}
	s := &stream{input: map[string]int{}}
	now := time.Now()
	for i := range n {
		f := i % len(files)
		body := append([]byte(fmt.Sprintf(`{"pulsebench_copy": %d, `, i)), raws[f][1:]...)
		if gateURL != "" {
			for _, host := range artifactHosts {
				body = bytes.ReplaceAll(body, []byte("http://"+host+"/"), []byte(fmt.Sprintf("%s/c%d/%s/", gateURL, i, host)))
			}
		}
		var outs []output
		var park amqp.Table
		_, outcome, err := proc.ProcessBody(p.Bindings[0].Exchange, keys[f], nil, body, now)
		var refusal *translator.Refusal
		switch {
		case errors.As(err, &refusal):
			park = parkHeaders(p, i, keys[f], refusal)
			s.parked++
		case err != nil:
			return nil, err
		}
		for _, r := range outcome.Published {
			b, err := process.Body(r, now)
			if err != nil {
				return nil, err
			}
			outs = append(outs, output{id: r.ID, routingKey: r.RoutingKey, cc: r.CC, body: b})
			s.input[r.ID] = i
		}
		s.keys = append(s.keys, keys[f])
		s.bodies = append(s.bodies, body)
		s.outputs = append(s.outputs, outs)
		s.parks = append(s.parks, park)
		s.total += len(outs)
	}
	return s, nil
}

// parkHeaders are the headers of an input's copy in the dead queue as the
// translator writes them, for a delivery as pulsebench publishes it.
func parkHeaders(p config.PipelineConfig, index int, key string, refusal *translator.Refusal) amqp.Table {
	d := &broker.Delivery{
		Exchange: p.Bindings[0].Exchange, RoutingKey: key, ContentType: "application/json",
		Headers: amqp.Table{headerIndex: strconv.Itoa(index)},
	}
	return runner.ParkHeaders(p.Name, d, refusal.Class, refusal.Reason)
}
