package runner_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// queueBytes returns the bytes of the message bodies a queue holds, as
// rabbitmqctl reports them.
func queueBytes(t *testing.T, queue string) int64 {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-q", "list_queues", "name", "message_bytes", "--no-table-headers").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, n, ok := strings.Cut(line, "\t"); ok && name == queue {
			b, _ := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
			return b
		}
	}
	t.Fatalf("the broker has no queue %s", queue)
	return 0
}

// TestLargeInputsStayBounded publishes, upstream, inputs whose log URL
// alone is 1.9 MB (30 of them) and bodies of 20 MB (one), to the real
// command run as a Pulse user; PULSETRANSLATOR_LARGE_SCALE=10 makes it
// 300 and five of 100 MB. The URLs are refused before any check
// (bad_artifact_url: longer than gate.MaxURLBytes, so nothing of them is
// cached) and their inputs parked whole; the large bodies are refused
// unread (too_large) and parked cut to 64 KiB. The dead queue holds no
// more than queue.dead_max_bytes, and the process's peak RSS stays
// within 64 MiB beside three times the largest body (amqp091-go
// assembles a body by appending its frames). The CPU per input is logged.
func TestLargeInputsStayBounded(t *testing.T) {
	conn := brokerOrSkip(t)
	rabbitmqctlOrFail(t)
	scale := 1
	if n, err := strconv.Atoi(os.Getenv("PULSETRANSLATOR_LARGE_SCALE")); err == nil && n > 0 {
		scale = n
	}
	urls, bigs, bigSize := 30*scale, 1, 20<<20
	if scale > 1 {
		bigs, bigSize = 5, 100<<20
	}
	const deadMaxBytes = 32 << 20
	w := newWorld(t, conn)
	store := newArtifactStore(t)
	store.all.Store(true)
	text := w.gateConfig(w.pulseUser(), []time.Duration{time.Minute}, time.Hour, "dead")
	text = strings.Replace(text, "dead_max_length: 1000}", fmt.Sprintf("dead_max_length: 1000, dead_max_bytes: %d}", deadMaxBytes), 1)
	proc := w.startTranslator(text)
	pid := proc.cmd.Process.Pid
	cpuBefore := processCPU(t, pid)

	long := strings.Repeat("a", 1900<<10)
	for i := range urls {
		b := newGatedBuild(t, store, fmt.Sprintf("long-%d", i))
		body := strings.Replace(string(b.body), b.logURL, b.logURL+"/"+long, 1)
		w.publishRaw(b.key, []byte(body))
	}
	big := []byte(`{"payload": "` + strings.Repeat("x", bigSize) + `"}`)
	for range bigs {
		dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, "build.x.1.log_uploaded", false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: big})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish a body of %d MB: %v", bigSize>>20, err)
		}
	}
	deadQueue := pulse.DeadQueue(w.client, "build")
	input := pulse.InputQueue(w.client, "build")
	// Everything is parked once the input queue is empty and stays so.
	if !w.waitFor(input, 2*time.Minute, func(m int) bool { return m == 0 }) {
		t.Fatal("the input queue did not empty")
	}
	time.Sleep(time.Second)
	cpu := processCPU(t, pid) - cpuBefore
	rss := peakRSS(t, pid)
	deadBytes := queueBytes(t, deadQueue)
	dead, err := w.inspect(deadQueue)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d inputs with a 1.9 MB log URL and %d of %d MB: peak RSS %.1f MiB, CPU %s (%.2f ms an input), dead queue %d messages, %.1f MiB",
		urls, bigs, bigSize>>20, float64(rss)/(1<<20), cpu, float64(cpu.Microseconds())/float64(urls+bigs)/1000, dead.Messages, float64(deadBytes)/(1<<20))
	if deadBytes > deadMaxBytes {
		t.Errorf("the dead queue holds %d bytes; queue.dead_max_bytes is %d", deadBytes, deadMaxBytes)
	}
	if bound := int64(64<<20 + 3*bigSize); rss > bound {
		t.Errorf("peak RSS %.1f MiB; the bound is %.1f MiB (64 MiB beside three times the largest body)", float64(rss)/(1<<20), float64(bound)/(1<<20))
	}
	reader := openDead(t, w.parse(text))
	parked, err := reader.Read(dead.Messages)
	if err != nil {
		t.Fatal(err)
	}
	classes := map[string]int{}
	for _, p := range parked {
		classes[p.Class]++
		if p.Class == pulse.ClassTooLarge && len(p.Delivery.Body) != process.MaxParkedCutBytes {
			t.Errorf("a too_large input parked with %d bytes of its body; want %d", len(p.Delivery.Body), process.MaxParkedCutBytes)
		}
	}
	if classes[pulse.ClassTooLarge] != bigs || classes[pulse.ClassBadArtifactURL] == 0 || len(classes) != 2 {
		t.Errorf("parked by class: %v; want %d too_large and bad_artifact_url (the oldest of which the byte cap dropped)", classes, bigs)
	}
	if n := store.checks.Load(); n != 0 {
		t.Errorf("the log host was asked %d times; a URL over the limit is never checked", n)
	}
}

// rabbitmqctlOrFail skips the test without rabbitmqctl, or fails it
// under CI=true.
func rabbitmqctlOrFail(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and rabbitmqctl is missing")
		}
		t.Skip("no rabbitmqctl")
	}
}
