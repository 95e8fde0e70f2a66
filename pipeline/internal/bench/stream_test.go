package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// corpusDir is the buildbot corpus, seen from this package's folder.
const corpusDir = "../../../translators/buildbot/testdata/corpus/buildbot"

func testOptions(n int) options {
	return options{broker: "amqp://guest:guest@127.0.0.1:5672/", corpus: corpusDir, mix: "*/*", client: "pulsebench-test",
		n: n, prefetch: 16, consumers: 2, publishChannels: 1, baselinePrefetch: 32, baselineChannels: 1, replicas: 1, runs: 1, baseline: true, timeout: time.Minute, queueType: "classic"}
}

func TestStreamCopiesAreDistinctAndKeepTheirOutputs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*/*"))
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	// Two full cycles and a few more: every file is copied at least twice.
	n := 2*len(files) + 3
	su, err := prepare(testOptions(n), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer su.cleanup()
	s := su.stream
	if len(s.bodies) != n || len(s.keys) != n || len(s.outputs) != n || len(s.parks) != n {
		t.Fatalf("stream of %d: %d bodies, %d keys, %d output lists, %d parks", n, len(s.bodies), len(s.keys), len(s.outputs), len(s.parks))
	}
	bodies := map[string]bool{}
	total, parked := 0, 0
	for i, body := range s.bodies {
		if bodies[string(body)] {
			t.Errorf("input %d repeats an earlier body", i)
		}
		bodies[string(body)] = true
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("input %d is not JSON: %v", i, err)
		}
		if m["pulsebench_copy"] != float64(i) {
			t.Errorf("input %d: pulsebench_copy %v", i, m["pulsebench_copy"])
		}
		raw, err := os.ReadFile(files[i%len(files)])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body[bytes.IndexByte(body, ',')+2:], raw[1:]) {
			t.Errorf("input %d is not %s with one field added", i, files[i%len(files)])
		}
		if s.parks[i] != nil {
			parked++
			if len(s.outputs[i]) != 0 {
				t.Errorf("input %d is parked and has %d outputs", i, len(s.outputs[i]))
			}
			if s.parks[i][pulse.HeaderClass] == "" || s.parks[i][pulse.HeaderReason] == "" {
				t.Errorf("input %d is parked without a class and reason: %v", i, s.parks[i])
			}
		}
		for _, o := range s.outputs[i] {
			if s.input[o.id] != i {
				t.Errorf("output %s of input %d maps to input %d", o.id, i, s.input[o.id])
			}
			if !json.Valid(o.body) || o.routingKey == "" {
				t.Errorf("output %s of input %d: routing key %q, body %.80s", o.id, i, o.routingKey, o.body)
			}
			total++
		}
	}
	if total != s.total || len(s.input) != total {
		t.Errorf("%d outputs, total %d, %d distinct ids", total, s.total, len(s.input))
	}
	if parked != s.parked || parked == 0 || parked == n {
		t.Errorf("%d parked, stream says %d, of %d", parked, s.parked, n)
	}
	// The added field changes nothing the translator does: a copy gives
	// the outputs of the file it copies, under other ids.
	for i := range len(files) {
		a, b := s.outputs[i], s.outputs[i+len(files)]
		if len(a) != len(b) || (s.parks[i] == nil) != (s.parks[i+len(files)] == nil) {
			t.Fatalf("copies %d and %d of %s differ: %d and %d outputs", i, i+len(files), files[i], len(a), len(b))
		}
		for j := range a {
			if a[j].routingKey != b[j].routingKey || a[j].id == b[j].id || !bytes.Equal(withoutID(a[j]), withoutID(b[j])) {
				t.Errorf("output %d of copies %d and %d of %s: %s %s and %s %s", j, i, i+len(files), files[i], a[j].routingKey, a[j].id, b[j].routingKey, b[j].id)
			}
		}
	}
}

// withoutID is an output's body with its id blanked.
func withoutID(o output) []byte { return bytes.ReplaceAll(o.body, []byte(o.id), nil) }

func TestStreamRefusesWhatIsNotACorpus(t *testing.T) {
	o := testOptions(5)
	o.mix = "no-such-tree/*"
	if _, err := prepare(o, io.Discard); err == nil || !strings.Contains(err.Error(), "no corpus files match") {
		t.Errorf("mix matching nothing: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"payload": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o = testOptions(5)
	o.corpus, o.mix = dir, "*"
	if _, err := prepare(o, io.Discard); err == nil || !strings.Contains(err.Error(), "x.json: not a raw pulse message") {
		t.Errorf("file without _meta.routing_key: %v", err)
	}
}

// TestBrokerPIDsFindsTheListeningProcess: the broker's CPU is measured over
// the process that listens on the -broker URL's port, here this test's own
// listener, and over each of a list's.
func TestBrokerPIDsFindsTheListeningProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pids := brokerPIDs(fmt.Sprintf("amqp://u:p@127.0.0.1:%d/,amqp://u:p@127.0.0.1:%d/", port, port))
	if len(pids) != 1 || pids[0] != os.Getpid() {
		t.Errorf("brokerPIDs = %v, want this process, %d", pids, os.Getpid())
	}
}
