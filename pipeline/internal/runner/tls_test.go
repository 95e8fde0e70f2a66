package runner_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// tlsNode is a second RabbitMQ node with only a TLS listener, started for
// one test with a certificate authority the test made.
type tlsNode struct {
	port   int
	caFile string
	pool   *x509.CertPool
}

// startTLSNode starts the node as the rabbitmq user (its Erlang cookie is
// the one rabbitmqctl needs), on free ports, and stops it at the end.
func startTLSNode(t *testing.T) *tlsNode {
	t.Helper()
	server := "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if _, err := os.Stat(server); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the TLS test starts a second RabbitMQ node: it needs Debian's rabbitmq-server (%v) and root", err)
		}
		t.Skipf("the TLS test needs Debian's rabbitmq-server and root")
	}
	dir, err := os.MkdirTemp("", "pulsetranslator-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The node runs as rabbitmq: it must read the files and own its dirs.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	node := &tlsNode{port: freePort(t), caFile: filepath.Join(dir, "ca.pem")}
	node.pool = writeCertificates(t, dir)
	for _, sub := range []string{"mnesia", "log"} {
		if out, err := exec.Command("install", "-d", "-o", "rabbitmq", filepath.Join(dir, sub)).CombinedOutput(); err != nil {
			t.Fatalf("install -d: %v\n%s", err, out)
		}
	}
	conf := fmt.Sprintf(`listeners.tcp = none
listeners.ssl.default = %d
ssl_options.cacertfile = %s/ca.pem
ssl_options.certfile = %s/server.pem
ssl_options.keyfile = %s/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
`, node.port, dir, dir, dir)
	writeFile(t, filepath.Join(dir, "rabbitmq.conf"), conf)
	writeFile(t, filepath.Join(dir, "plugins"), "[].\n")

	name := fmt.Sprintf("pttls%d@localhost", node.port)
	env := fmt.Sprintf("RABBITMQ_NODENAME=%s RABBITMQ_DIST_PORT=%d RABBITMQ_CONFIG_FILE=%s/rabbitmq RABBITMQ_MNESIA_BASE=%s/mnesia RABBITMQ_LOG_BASE=%s/log RABBITMQ_ENABLED_PLUGINS_FILE=%s/plugins RABBITMQ_PID_FILE=%s/mnesia/pid",
		name, freePort(t), dir, dir, dir, dir, dir)
	asRabbit := func(command string) *exec.Cmd {
		return exec.Command("su", "rabbitmq", "-s", "/bin/sh", "-c", "cd /var/lib/rabbitmq && HOME=/var/lib/rabbitmq "+command)
	}
	if out, err := asRabbit(env + " " + server + " -detached").CombinedOutput(); err != nil {
		t.Fatalf("start the TLS node: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := asRabbit("/usr/lib/rabbitmq/bin/rabbitmqctl -n " + name + " stop").CombinedOutput(); err != nil {
			t.Errorf("stop the TLS node %s: %v\n%s", name, err, out)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := amqp.DialTLS(node.url("guest", "guest", "localhost"), &tls.Config{RootCAs: node.pool})
		if err == nil {
			conn.Close()
			return node
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(dir, "log", name+".log"))
			t.Fatalf("the TLS node did not accept a connection within 90s: %v\n%s", err, logs)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (n *tlsNode) url(user, password, host string) string {
	return fmt.Sprintf("amqps://%s:%s@%s:%d/", user, password, host, n.port)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCertificates makes a certificate authority and a server certificate
// for localhost and 127.0.0.1, and writes ca.pem, server.pem, server.key.
func writeCertificates(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pulsetranslator test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	writeFile(t, filepath.Join(dir, "server.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})))
	writeFile(t, filepath.Join(dir, "server.key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}

// TestTLS runs a message through a pipeline connected with amqps:// to a
// TLS-only node, verifying its certificate against the test's authority;
// without that authority, or by a name the certificate does not hold, the
// connection is refused with an error that says what to do.
func TestTLS(t *testing.T) {
	brokerOrSkip(t)
	node := startTLSNode(t)
	admin, err := amqp.DialTLS(node.url("guest", "guest", "localhost"), &tls.Config{RootCAs: node.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ch, _ := admin.Channel()
	upstream := "exchange/tls-upstream/build/"
	if err := ch.ExchangeDeclare(upstream, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	config := func(connection, caFile string) *config.Config {
		tlsSection := ""
		if caFile != "" {
			tlsSection = "tls: {ca_file: " + caFile + "}\n"
		}
		cfg, err := config.Parse("tls config", []byte(fmt.Sprintf(`client_id: tlstest
connection: %s
%spipelines:
  - name: build
    translator: buildbot
    bindings: [{exchange: %s, routing_keys: ['#']}]
    outputs: [{exchange: build/normalized}]
    rules: [builtin:buildbot.yaml]
`, connection, tlsSection, upstream)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	start(t, config(node.url("guest", "guest", "localhost"), node.caFile))
	q, _ := ch.QueueDeclare("", false, true, true, false, nil)
	if err := ch.QueueBind(q.Name, "build.#", "exchange/tlstest/build/normalized", false, nil); err != nil {
		t.Fatal(err)
	}
	out, _ := ch.Consume(q.Name, "", true, true, false, false, nil)
	body, key := corpusFile(t, "mozilla-central/build.mozilla-central-linux64.105.log_uploaded")
	if err := ch.Publish(upstream, key, false, false, amqp.Publishing{ContentType: "application/json", Body: body}); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, out, "the output exchange over TLS"); d.RoutingKey != "build.mozilla-central.linux64.opt.mozilla-central-linux64" {
		t.Errorf("routing key %q", d.RoutingKey)
	}

	refused := []struct {
		name, connection, caFile, want string
	}{
		{"unknown authority", node.url("guest", "guest", "localhost"), "", "does not verify; set tls.ca_file"},
		{"name not in the certificate", node.url("guest", "guest", "127.0.0.2"), node.caFile, "not valid for this host name"},
	}
	for _, c := range refused {
		rn, err := runner.New(config(c.connection, c.caFile), translator.Default, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = rn.Run(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "guest:guest") {
			t.Errorf("%s: %v; want a refusal saying %q, without the password", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
}
