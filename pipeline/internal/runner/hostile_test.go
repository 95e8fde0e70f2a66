package runner_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	amqp "github.com/rabbitmq/amqp091-go"
)

// peakRSS reads the peak resident set size of a process, in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestHostileInput publishes a table of bad messages upstream to the real
// command, run as a Pulse user: each one ends in the dead queue with a
// class and a reason that names the problem, the process stays up, its
// memory stays bounded, and the good message published after them all is
// translated. A body over limits.max_input_bytes is parked cut, with its
// size and SHA-256.
func TestHostileInput(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	proc := w.startTranslator(w.configText(w.pulseUser(), "[builtin:buildbot.yaml]", ""))
	main := w.probe(pulse.ExchangeName(w.client, "build/normalized"), "build.#")
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, goodKey := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	meta := `"_meta": {"exchange": "exchange/build/", "routing_key": "build.mozilla-central-linux64.105.log_uploaded"}`
	props := func(platform string) string {
		return `{"payload": {"build": {"properties": [["branch", "mozilla-central", "x"], ["platform", "` + platform +
			`", "x"], ["buildername", "Linux x86-64 mozilla-central build", "x"], ["buildurl", "http://a/b.tar.bz2", "x"]]}}, ` + meta + `}`
	}
	repack, _ := corpusFile(t, "release-mozilla-beta/build.release-mozilla-beta-win32_repack_2.16.log_uploaded")
	nightly, _ := corpusFile(t, "mozilla-central/build.mozilla-central-linux-l10n-nightly-1.0.log_uploaded")
	manyLocales := make([]string, 10000)
	manyStatuses := make([]string, 160000)
	for i := range manyLocales {
		manyLocales[i] = fmt.Sprintf("l%d", i)
	}
	for i := range manyStatuses {
		manyStatuses[i] = fmt.Sprintf(`\"l%d\": \"Success\"`, i)
	}
	cases := []struct {
		name, body, contentType, class, reason string
	}{
		{"a release repack of 10,000 locales", regexp.MustCompile(`"locales", "[^"]*"`).ReplaceAllString(string(repack), `"locales", "`+strings.Join(manyLocales, ",")+`"`),
			"", pulse.ClassTooManyOutputs, "10000 or more locales"},
		{"a nightly repack of 160,000 locales", regexp.MustCompile(`"locales", "\{[^}]*\}"`).ReplaceAllString(string(nightly), `"locales", "{`+strings.Join(manyStatuses, ", ")+`}"`),
			"", pulse.ClassTooManyOutputs, "1001 or more locales"},
		{"a build number beyond 2^53", strings.Replace(string(good), `"buildnumber", 105,`, `"buildnumber", 9007199254740993,`, 1), "", pulse.ClassUnsafeNumber, "9007199254740993"},
		{"empty body", "", "", pulse.ClassMalformed, "not well-formed JSON"},
		{"malformed JSON", `{"payload": {"build": `, "", pulse.ClassMalformed, "not well-formed JSON"},
		{"invalid UTF-8", "{\"payload\": \"\xff\xfe\"}", "", pulse.ClassNotUTF8, "not valid UTF-8"},
		{"a JSON array", `[1, 2, 3]`, "", "malformed", "a JSON array"},
		{"a JSON string", `"build finished"`, "", "malformed", "a JSON string"},
		{"no payload", `{` + meta + `}`, "", "malformed", "no payload.build.properties"},
		{"no _meta", `{"payload": {"build": {"properties": []}}}`, "", "malformed", "no _meta"},
		{"a number for a string", strings.Replace(props("linux64"), `"mozilla-central", "x"`, `42, "x"`, 1), "", "bad_property", `"branch" property is a number`},
		{"nulls everywhere", `{"payload": {"build": {"properties": [["branch", null, null], ["platform", null, null]], "results": null}}, "_meta": {"exchange": null, "routing_key": null}}`, "", "no_branch", "no 'branch' property"},
		{"unknown platform", props("plan9"), "", "unknown_message_type", `platform "plan9"`},
		{"a 10 MiB body", `{"payload": "` + strings.Repeat("x", 10<<20) + `"}`, "", pulse.ClassTooLarge, "limit is 4194304"},
		{"nested 100,000 deep", strings.Repeat("[", 100000) + strings.Repeat("]", 100000), "", pulse.ClassTooDeep, "more than 64 levels"},
		{"wrong content type", string(good), "application/x-msgpack", pulse.ClassContentType, "application/x-msgpack"},
	}
	for marker, c := range map[string]int{"l9998,l9999": 0, `\"l159999\"`: 1, "9007199254740993": 2} {
		if !strings.Contains(cases[c].body, marker) {
			t.Fatalf("%s: the corpus file no longer has what the test rewrites", cases[c].name)
		}
	}
	for _, c := range cases {
		ct := c.contentType
		if ct == "" {
			ct = "application/json"
		}
		dc, err := w.admin.PublishWithDeferredConfirm(w.upstream, "build.mozilla-central-linux64.105.log_uploaded", false, false, amqp.Publishing{
			ContentType: ct, DeliveryMode: amqp.Persistent, Body: []byte(c.body), Headers: amqp.Table{"x-test-case": c.name},
		})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish %s: %v", c.name, err)
		}
	}
	w.publishRaw(goodKey, good)

	parked := map[string]amqp.Delivery{}
	for len(parked) < len(cases) {
		d := receive(t, dead, fmt.Sprintf("the dead queue (%d of %d parked)", len(parked), len(cases)))
		parked[fmt.Sprint(d.Headers["x-test-case"])] = d
	}
	for _, c := range cases {
		d, ok := parked[c.name]
		class, reason := fmt.Sprint(d.Headers[pulse.HeaderClass]), fmt.Sprint(d.Headers[pulse.HeaderReason])
		switch {
		case !ok:
			t.Errorf("%s: not in the dead queue", c.name)
		case c.class != "" && class != c.class, !strings.Contains(reason, c.reason):
			t.Errorf("%s: class %q reason %q; want %q naming %q", c.name, class, reason, c.class, c.reason)
		case len(c.body) > config.DefaultMaxInputBytes:
			sum := sha256.Sum256([]byte(c.body))
			if string(d.Body) != c.body[:process.MaxParkedCutBytes] || d.Headers[pulse.HeaderOriginalBytes] != strconv.Itoa(len(c.body)) ||
				d.Headers[pulse.HeaderOriginalSHA256] != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: parked %d bytes, original %v bytes, SHA-256 %v; want its first %d bytes, %d and %x", c.name, len(d.Body),
					d.Headers[pulse.HeaderOriginalBytes], d.Headers[pulse.HeaderOriginalSHA256], process.MaxParkedCutBytes, len(c.body), sum)
			}
		case string(d.Body) != c.body:
			t.Errorf("%s: the parked body is not the original (%d bytes, want %d)", c.name, len(d.Body), len(c.body))
		}
	}
	out := receive(t, main, "the output exchange after the bad messages")
	if out.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
		t.Errorf("the good message came out as %q", out.RoutingKey)
	}
	select {
	case <-proc.done:
		t.Fatal("the translator process exited")
	default:
	}
	rss := peakRSS(t, proc.cmd.Process.Pid)
	t.Logf("%d bad inputs parked, the good one translated; the process's peak RSS was %.1f MiB", len(cases), float64(rss)/(1<<20))
	if rss > 128<<20 {
		t.Errorf("peak RSS %.1f MiB; a 10 MiB message should cost at most a few times its size", float64(rss)/(1<<20))
	}
}

// processCPU returns the CPU time (user and system) a process has used,
// from /proc/<pid>/stat (in ticks of 10ms).
func processCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
