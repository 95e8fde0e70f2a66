package runner_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The crash tests run the real command in a child process, so that they
// can kill it with SIGKILL as an operator's machine would.

var translatorBinary struct {
	once      sync.Once
	dir, path string
	err       error
	out       []byte
}

func TestMain(m *testing.M) {
	if addr, n := os.Getenv(holdEnvAddr), os.Getenv(holdEnvCount); addr != "" {
		os.Exit(holdConnections(addr, n))
	}
	code := m.Run()
	if translatorBinary.dir != "" {
		os.RemoveAll(translatorBinary.dir)
	}
	os.Exit(code)
}

// buildTranslator builds cmd/pulsetranslator once per test run.
func buildTranslator(t testing.TB) string {
	t.Helper()
	b := &translatorBinary
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "pulsetranslator-test-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "pulsetranslator")
		b.out, b.err = exec.Command("go", "build", "-o", b.path, "../../../cmd/pulsetranslator").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build ../../../cmd/pulsetranslator: %v\n%s", b.err, b.out)
	}
	return b.path
}

// translatorProcess is "pulsetranslator run" in a child process.
type translatorProcess struct {
	cmd  *exec.Cmd
	logs *brokertest.Logs
	done chan struct{}
}

// launchTranslator writes configText to a file and runs the command on
// it, with extra flags, killed when the test ends.
func (w *world) launchTranslator(configText string, flags ...string) *translatorProcess {
	w.t.Helper()
	return w.launchUnder(nil, configText, flags...)
}

// launchUnder is launchTranslator with the command run by wrapper (such
// as prlimit and its options).
func (w *world) launchUnder(wrapper []string, configText string, flags ...string) *translatorProcess {
	t := w.t
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &translatorProcess{logs: &brokertest.Logs{}, done: make(chan struct{})}
	argv := append(append(slices.Clone(wrapper), buildTranslator(t), "run", "--config", path), flags...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("translator process logs:\n%s", p.logs.String())
		}
	})
	return p
}

// startTranslator launches the command on configText and waits until it
// consumes the world's input queue.
func (w *world) startTranslator(configText string, flags ...string) *translatorProcess {
	t := w.t
	t.Helper()
	p := w.launchTranslator(configText, flags...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("the translator exited at start-up:\n%s", p.logs.String())
		default:
		}
		if w.consumers("build") > 0 {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the translator did not consume within 20s:\n%s", p.logs.String())
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *translatorProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// consumers is the number of consumers on a pipeline's input queue.
func (w *world) consumers(pipelineName string) int {
	q, err := w.inspect(pulse.InputQueue(w.client, pipelineName))
	if err != nil {
		return 0
	}
	return q.Consumers
}

// inspect reads a queue's counts on a channel of its own (a failed
// passive declare closes the channel).
func (w *world) inspect(queue string) (amqp.Queue, error) {
	conn, err := w.dial()
	if err != nil {
		return amqp.Queue{}, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return amqp.Queue{}, err
	}
	return ch.QueueDeclarePassive(queue, true, false, false, false, nil)
}

// withBuildbotData gives spec, a test's own translator, the schemas and
// rule files the buildbot plugin ships, so that a config naming
// builtin:buildbot.yaml loads with a registry of the test's own.
func withBuildbotData(spec translator.Spec) translator.Spec {
	bb, ok := translator.Default.Lookup("buildbot")
	if !ok {
		panic("the buildbot plugin is not registered")
	}
	spec.Schemas, spec.Rules = bb.Schemas, bb.Rules
	return spec
}
