package runner_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
)

// cluster is a RabbitMQ cluster of its own that a test starts on this
// machine with deploy/local/cluster.sh, and stops and removes at its end.
type cluster struct {
	t     *testing.T
	dir   string
	names []string
	ports []int
}

const clusterScript = "../../../deploy/local/cluster.sh"

// startCluster starts n nodes and clusters them. Without rabbitmq-server
// or root it skips, or fails with CI=true.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	if _, err := os.Stat("/usr/lib/rabbitmq/bin/rabbitmq-server"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the cluster test starts %d RabbitMQ nodes: it needs Debian's rabbitmq-server (%v) and root", n, err)
		}
		t.Skip("the cluster test needs Debian's rabbitmq-server and root")
	}
	// A node whose port another process took in the moment between
	// cluster.sh choosing it and the node binding it does not start: a
	// second cluster, on ports of its own, is tried before the test fails.
	var c *cluster
	var out []byte
	began := time.Now()
	for attempt := 1; ; attempt++ {
		var err error
		c, out, err = tryCluster(t, n)
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("%v\nstarting another cluster", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var name string
		var port int
		if _, err := fmt.Sscanf(line, "%s %d", &name, &port); err != nil {
			t.Fatalf("cluster.sh start printed %q: %v", line, err)
		}
		c.names, c.ports = append(c.names, name), append(c.ports, port)
	}
	t.Logf("a cluster of %d nodes started in %s: %v", n, time.Since(began).Round(time.Millisecond), c.names)
	return c
}

// tryCluster starts a cluster of n nodes in a directory of its own, which
// the rabbitmq user can reach (not t.TempDir), and stops it when the test
// ends; a cluster that fails to start is stopped at once.
func tryCluster(t *testing.T, n int) (*cluster, []byte, error) {
	parent, err := os.MkdirTemp("", "pulsetranslator-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: filepath.Join(parent, "cluster")}
	stop := func() error {
		defer os.RemoveAll(parent)
		if out, err := exec.Command(clusterScript, "stop", c.dir).CombinedOutput(); err != nil {
			return fmt.Errorf("cluster.sh stop: %v\n%s", err, out)
		}
		return nil
	}
	out, err := exec.Command(clusterScript, "start", c.dir, strconv.Itoa(n)).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		if serr := stop(); serr != nil {
			t.Log(serr)
		}
		return nil, nil, fmt.Errorf("cluster.sh start: %v\n%s%s", err, out, stderr)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return c, out, nil
}

// script runs cluster.sh with args on this cluster.
func (c *cluster) script(args ...string) string {
	c.t.Helper()
	out, err := exec.Command(clusterScript, append([]string{args[0], c.dir}, args[1:]...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// url is the AMQP URL of node i (0-based) for a user.
func (c *cluster) url(i int, user *url.Userinfo) string {
	u := url.URL{Scheme: "amqp", User: user, Host: fmt.Sprintf("127.0.0.1:%d", c.ports[i]), Path: "/"}
	return u.String()
}

// urls are the URLs of every node for a user.
func (c *cluster) urls(user *url.Userinfo) []string {
	var urls []string
	for i := range c.ports {
		urls = append(urls, c.url(i, user))
	}
	return urls
}

// node is the index of the node with the given name, or of the node a
// URL (as logs show it) points at.
func (c *cluster) node(nameOrHost string) int {
	port := ""
	if u, err := url.Parse(nameOrHost); err == nil && u.Host != "" {
		port = u.Port()
	}
	for i := range c.names {
		if c.names[i] == nameOrHost || port == strconv.Itoa(c.ports[i]) {
			return i
		}
	}
	c.t.Fatalf("%q is no node of the cluster %v (ports %v)", nameOrHost, c.names, c.ports)
	return -1
}

// pulseUser creates, on the cluster, a user with exactly the Pulse
// permissions of client, and returns its user info.
func (c *cluster) pulseUser(client string) *url.Userinfo {
	c.t.Helper()
	password := "p/w@" + client
	own := fmt.Sprintf("^(exchange|queue)/%s/.*", client)
	read := fmt.Sprintf("^(exchange/.*|queue/%s/.*)", client)
	c.script("ctl", "1", "add_user", client, "'"+password+"'")
	c.script("ctl", "1", "set_permissions", "-p", "/", client, "'"+own+"'", "'"+own+"'", "'"+read+"'")
	return url.UserPassword(client, password)
}

// logEvent is one JSON log line of a translator process.
type logEvent struct {
	Time   time.Time `json:"time"`
	Msg    string    `json:"msg"`
	Broker string    `json:"broker"`
}

// connections reads a translator's log: the node it was last connected
// to, how many times it lost its connection, and the time from each loss
// to the next connection.
func connections(logs string) (last string, losses int, reconnecting time.Duration) {
	var lostAt time.Time
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e logEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case e.Msg == "connected to the broker":
			last = e.Broker
			if !lostAt.IsZero() {
				reconnecting += e.Time.Sub(lostAt)
				lostAt = time.Time{}
			}
		case strings.HasPrefix(e.Msg, "lost the connection to the broker"):
			losses++
			lostAt = e.Time
		}
	}
	return last, losses, reconnecting
}

// warnings are the first max lines of JSON logs at level WARN or ERROR.
func warnings(logs string, max int) string {
	var out []string
	for line := range strings.Lines(logs) {
		var e struct{ Level string }
		if json.Unmarshal([]byte(line), &e) == nil && (e.Level == "WARN" || e.Level == "ERROR") {
			if out = append(out, strings.TrimSpace(line)); len(out) == max {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// expectedOutputs are the ids of the outputs the raw messages give.
func expectedOutputs(t *testing.T, cfg *config.Config, keys []string, bodies [][]byte) map[string]bool {
	t.Helper()
	proc := processorOf(t, cfg)
	ids := map[string]bool{}
	for i := range keys {
		if _, outcome, err := proc.ProcessBody(cfg.Pipelines[0].Bindings[0].Exchange, keys[i], nil, bodies[i], time.Now()); err == nil {
			for _, r := range outcome.Published {
				ids[r.ID] = true
			}
		}
	}
	return ids
}

// readyz is what a process's /readyz answers.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// publishRetries are a replica's pulsetranslator_publish_retries_total
// by target, from its /metrics, as text.
func publishRetries(t *testing.T, addr string) string {
	_, text := get(t, "http://"+addr+"/metrics")
	var counts []string
	for line := range strings.Lines(grepLines(text, "pulsetranslator_publish_retries_total{")) {
		_, target, _ := strings.Cut(line, `target="`)
		target, _, _ = strings.Cut(target, `"`)
		counts = append(counts, target+" "+strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]))
	}
	if len(counts) == 0 {
		return "none"
	}
	return strings.Join(counts, ", ")
}

// TestClusterNodeLoss runs two replicas, connected to different nodes of
// a three-node cluster, on quorum queues, while 5,000 corpus messages
// (PULSE_FAULT_MESSAGES) stream in, 200 of them waiting in the readiness
// gate for logs that appear only after both faults: a quarter of the way
// in, the node that leads the input queue is stopped; once it is back and
// the queues have caught up, another node is killed with SIGKILL and
// stays down while the stream ends. Every output arrives, counted by
// message id, both replicas keep running and end connected to nodes that
// were up. A wait queue's at-least-once dead-letter worker may have had
// waiting messages in flight when the node died: RabbitMQ sends them again
// after its publisher confirm timeout (3 minutes) when the node led the
// input queue, and only once the node is back when it led the wait queue.
// So if outputs are missing a minute after the stream, the test says what
// the wait queues hold, starts the node again, as an operator would, and
// waits up to 8 more minutes for every output.
func TestClusterNodeLoss(t *testing.T) {
	c := startCluster(t, 3)
	guest := url.UserPassword("guest", "guest")
	conn, err := dialFirst(c.urls(guest))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w := newWorld(t, conn)
	w.nodes = c.urls(guest)
	n := faultMessages(t)
	const gated = 200
	// Nothing is dropped from the dead queue: what it holds is counted.
	w.maxLength, w.deadMaxLength = 2*n, 2*n
	user := c.pulseUser(w.client)
	store := newArtifactStore(t)

	rules := filepath.Join(t.TempDir(), "wait-local.yaml")
	writeFile(t, rules, fmt.Sprintf("rules:\n  - name: wait-for-local-log\n    when: 'payload.logurl != nil && payload.logurl startsWith %q'\n    wait_for: ['payload.logurl']\n", store.srv.URL+"/"))
	w.tiers = []time.Duration{time.Second, 3 * time.Second}
	text := w.configText(strings.Join(c.urls(user), ","), "[builtin:buildbot.yaml, "+rules+"]",
		"    wait: {tiers: [1s, 3s], deadline: 10m, check: {timeout: 2s, allow_private: true}}\n")
	text = strings.Replace(text, fmt.Sprintf("queue: {max_length: %d, dead_max_length: %d}", w.maxLength, w.deadMaxLength),
		fmt.Sprintf("queue: {max_length: %d, dead_max_length: %d, type: quorum}", w.maxLength, w.deadMaxLength), 1)
	cfg := w.parse(text)

	// The stream: corpus messages, with a gated build every n/gated inputs.
	s := newStream(t, cfg, n)
	var gatedLogs []string
	for i := range gated {
		b := newGatedBuild(t, store, fmt.Sprintf("g%d", i))
		s.keys[i*(n/gated)], s.bodies[i*(n/gated)] = b.key, b.body
		gatedLogs = append(gatedLogs, b.logPath)
	}
	s.expected = expectedOutputs(t, cfg, s.keys, s.bodies)

	// Two replicas, each on a node of its own: the second is started
	// again until its shuffled order puts it on another node than the first.
	type replica struct {
		proc *translatorProcess
		http string
	}
	launch := func() replica {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		return replica{proc: w.launchTranslator(text, "--http", addr), http: addr}
	}
	awaitConnected := func(r replica) string {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-r.proc.done:
				t.Fatalf("a replica exited at start-up:\n%s", r.proc.logs)
			default:
			}
			if code, _ := readyz(t, r.http); code == http.StatusOK {
				last, _, _ := connections(r.proc.logs.String())
				return last
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("a replica was not ready within 60s:\n%s", r.proc.logs)
		return ""
	}
	a := launch()
	nodeA := c.node(awaitConnected(a))
	var b replica
	for attempt := 0; ; attempt++ {
		b = launch()
		if c.node(awaitConnected(b)) != nodeA {
			break
		}
		if attempt == 20 {
			t.Fatal("the second replica chose the first one's node 20 times in a row")
		}
		b.proc.kill()
	}
	w.quorumProbe = true
	probe := w.durableProbe()

	sk := &soak{t: t, w: w, s: s}
	began := time.Now()
	input := pulse.InputQueue(w.client, "build")
	var stopped, killed int
	for i := 0; i < n; {
		switch i {
		case n / 4:
			leader := c.script("leader", input)
			stopped = c.node(leader)
			at := time.Now()
			c.script("stop-node", strconv.Itoa(stopped+1))
			t.Logf("input %d (%s in): stopped %s, the input queue's leader, in %s", i, at.Sub(began).Round(time.Millisecond), leader, time.Since(at).Round(time.Millisecond))
		case n / 2:
			at := time.Now()
			c.script("start-node", strconv.Itoa(stopped+1))
			// The next victim: not the node just back, and the node of the
			// replica that has not lost its own yet, so that both replicas
			// live through a loss; killed only once no quorum queue needs
			// it for a majority.
			lastA, lossesA, _ := connections(a.proc.logs.String())
			lastB, _, _ := connections(b.proc.logs.String())
			killed = c.node(lastB)
			if lossesA == 0 || killed == stopped {
				killed = c.node(lastA)
			}
			if killed == stopped {
				killed = (stopped + 1) % 3
			}
			for deadline := time.Now().Add(2 * time.Minute); ; {
				out, err := exec.Command(clusterScript, "queues", c.dir, strconv.Itoa(killed+1), "check_if_node_is_quorum_critical").CombinedOutput()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the queues still need %s for a majority 2 minutes after %s came back: %s", c.names[killed], c.names[stopped], out)
				}
				time.Sleep(500 * time.Millisecond)
			}
			caughtUp := time.Now()
			c.script("kill-node", strconv.Itoa(killed+1))
			t.Logf("input %d (%s in): %s back, queues caught up after %s; killed %s with SIGKILL", i, at.Sub(began).Round(time.Millisecond), c.names[stopped], caughtUp.Sub(at).Round(time.Millisecond), c.names[killed])
		case 3 * n / 4:
			for _, path := range gatedLogs {
				store.makeReady(path)
			}
			t.Logf("input %d (%s in): the %d gated builds' logs appear", i, time.Since(began).Round(time.Millisecond), gated)
		}
		end := min(i+200, n)
		for _, mark := range []int{n / 4, n / 2, 3 * n / 4} {
			if i < mark && end > mark {
				end = mark
			}
		}
		sk.publishRange(i, end)
		i = end
		for _, r := range []replica{a, b} {
			select {
			case <-r.proc.done:
				t.Fatalf("a replica exited:\n%s", r.proc.logs)
			default:
			}
		}
	}
	published := time.Since(began)
	allArrived := func(m int) bool { return m >= len(s.expected) }
	if !w.waitFor(probe, time.Minute, allArrived) {
		q, _ := w.inspect(probe)
		// A queue's declare counts only its ready messages; rabbitmqctl
		// also counts those its dead-letter worker is still sending.
		live := strconv.Itoa((killed+1)%3 + 1)
		out, _ := exec.Command(clusterScript, "ctl", c.dir, live, "list_queues", "name", "messages", "messages_ready", "leader").CombinedOutput()
		var waiting []string
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "/wait/") {
				waiting = append(waiting, strings.Join(strings.Fields(line), " "))
			}
		}
		t.Logf("a minute after the stream, %d of %d outputs arrived; wait queues (name, messages, ready, leader): %s; starting %s again, as an operator would",
			q.Messages, len(s.expected), strings.Join(waiting, "; "), c.names[killed])
		c.script("start-node", strconv.Itoa(killed+1))
	}
	if !w.waitFor(probe, 8*time.Minute, allArrived) {
		// Say where the missing ones are before counting what arrived.
		depths := []string{}
		queues := []string{probe, input, pulse.DeadQueue(w.client, "build")}
		for _, tier := range w.tiers {
			queues = append(queues, pulse.WaitQueue(w.client, "build", tier))
		}
		for _, q := range queues {
			if got, err := w.inspect(q); err == nil {
				depths = append(depths, fmt.Sprintf("%s %d (%d consumers)", q, got.Messages, got.Consumers))
			} else {
				depths = append(depths, fmt.Sprintf("%s: %v", q, err))
			}
		}
		t.Errorf("the outputs did not all arrive within 9 minutes; queues: %s", strings.Join(depths, "; "))
	}
	time.Sleep(2 * time.Second)
	ids := w.drain(probe)
	lost, duplicates, unexpected := delivered(s.expected, ids, nil)
	t.Logf("cluster: %d raw messages published (%d gated) in %s, %d outputs expected, %d distinct arrived in %s: %d lost, %d duplicates, %d unexpected",
		n, gated, published.Round(time.Second), len(s.expected), len(ids), time.Since(began).Round(time.Second), lost, duplicates, unexpected)
	if lost > 0 || unexpected > 0 {
		gatedLost := 0
		for i := range gated {
			for id := range outputIDs(t, cfg, s.keys[i*(n/gated)], s.bodies[i*(n/gated)]) {
				if ids[id] == 0 {
					gatedLost++
				}
			}
		}
		t.Errorf("%d outputs lost (%d of them of the %d gated builds, which waited in the wait queues), %d unexpected", lost, gatedLost, gated, unexpected)
		for i, r := range []replica{a, b} {
			t.Logf("replica %d's warnings and errors:\n%s", i+1, warnings(r.proc.logs.String(), 40))
		}
	}
	// The stream's own refusals are parked; nothing may be parked because
	// the cluster lost a node, nor dead-lettered by the broker.
	dead := w.deadClasses(pulse.DeadQueue(w.client, "build"))
	t.Logf("the dead queue held, by class: %v", dead)
	for class, count := range dead {
		if class == pulse.ClassUnpublishable || class == pulse.ClassInternal || strings.HasPrefix(class, "broker:") {
			t.Errorf("%d inputs were parked as %s: a node's loss cost them their outputs", count, class)
		}
	}
	// Each gated build was checked while its log was missing, waited, and
	// was checked again: more checks than builds.
	if checks := store.checks.Load(); checks < 2*gated {
		t.Errorf("the log server answered %d checks for %d gated builds: they did not wait", checks, gated)
	} else {
		t.Logf("the %d gated builds' logs were checked %d times", gated, checks)
	}
	for i, r := range []replica{a, b} {
		select {
		case <-r.proc.done:
			t.Errorf("replica %d exited:\n%s", i+1, r.proc.logs)
			continue
		default:
		}
		last, losses, reconnecting := connections(r.proc.logs.String())
		code, body := readyz(t, r.http)
		t.Logf("replica %d: lost its connection %d times, %s reconnecting in all; ends on %s; /readyz %d %q; publishes tried again: %s",
			i+1, losses, reconnecting.Round(time.Millisecond), last, code, body, publishRetries(t, r.http))
		if c.node(last) == killed || code != http.StatusOK || !strings.Contains(body, last) {
			t.Errorf("replica %d ends on %s (/readyz %d %q); want a node that is up, %s is down", i+1, last, code, body, c.names[killed])
		}
	}
}
