// Package deploycheck holds the tests of the deployment files under
// deploy/: they parse, fit together and, for the RabbitMQ definitions,
// grant what they claim on the real broker; the alerts and the dashboard
// name only metrics the runner exports.
package deploycheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/brokertest"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	_ "github.com/pulsetranslator/pulsetranslator/translators/all"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.yaml.in/yaml/v3"
)

// manifest is the part of a Kubernetes object the test reads.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas     int `yaml:"replicas"`
		MinAvailable int `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
						SubPath   string `yaml:"subPath"`
					} `yaml:"volumeMounts"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					LivenessProbe  probe `yaml:"livenessProbe"`
					ReadinessProbe probe `yaml:"readinessProbe"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string                `yaml:"name"`
					ConfigMap struct{ Name string } `yaml:"configMap"`
					Secret    struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// probe is an HTTP probe of a container.
type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func readManifests(t *testing.T) map[string]manifest {
	t.Helper()
	paths, _ := filepath.Glob(deployPath("kubernetes", "*.yaml"))
	objects := map[string]manifest{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var m manifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				t.Errorf("%s: an object without apiVersion, kind or name", path)
			}
			objects[m.Kind] = m
		}
	}
	return objects
}

// TestKubernetesManifests checks the manifests parse and fit together: two
// replicas, probes on the health endpoints of the port run serves, the
// Secret and ConfigMap they name, a PodDisruptionBudget that selects the
// pods, and a config in the ConfigMap that loads and compiles.
func TestKubernetesManifests(t *testing.T) {
	objects := readManifests(t)
	for _, kind := range []string{"Deployment", "ConfigMap", "Secret", "PodDisruptionBudget"} {
		if _, ok := objects[kind]; !ok {
			t.Fatalf("no %s among the manifests", kind)
		}
	}
	dep, cm, secret, pdb := objects["Deployment"], objects["ConfigMap"], objects["Secret"], objects["PodDisruptionBudget"]
	if dep.Spec.Replicas != 2 {
		t.Errorf("%d replicas, want 2", dep.Spec.Replicas)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--http :9464") || len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9464 {
		t.Errorf("args %q and ports %+v: the health port must be the one run serves", args, c.Ports)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.LivenessProbe.HTTPGet.Port != c.Ports[0].Name || c.ReadinessProbe.HTTPGet.Port != c.Ports[0].Name {
		t.Errorf("probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	// The connection string is a file of the Secret, mounted whole (the
	// kubelet never updates a subPath mount), which the process reads at
	// every connect: a rotated Secret reaches it without a restart.
	connectionFile := ""
	for _, e := range c.Env {
		if e.Name == config.EnvConnectionFile {
			connectionFile = e.Value
		}
	}
	volumes := map[string]string{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v.ConfigMap.Name + v.Secret.SecretName
	}
	secretMounted := false
	for _, m := range c.VolumeMounts {
		if volumes[m.Name] == secret.Metadata.Name && m.SubPath == "" && filepath.Dir(connectionFile) == m.MountPath && secret.StringData[filepath.Base(connectionFile)] != "" {
			secretMounted = true
		}
		if volumes[m.Name] == "" {
			t.Errorf("the volume mount %s names no volume", m.Name)
		}
	}
	if !secretMounted {
		t.Errorf("the container must read %s (%q) from the Secret %q mounted whole as a volume", config.EnvConnectionFile, connectionFile, secret.Metadata.Name)
	}
	if volumes["config"] != cm.Metadata.Name {
		t.Errorf("the config volume must be the ConfigMap %q", cm.Metadata.Name)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the PodDisruptionBudget selects %s=%s, which the pods do not carry", k, v)
		}
	}
	if pdb.Spec.MinAvailable < 1 || pdb.Spec.MinAvailable >= dep.Spec.Replicas {
		t.Errorf("minAvailable %d with %d replicas", pdb.Spec.MinAvailable, dep.Spec.Replicas)
	}

	// The ConfigMap's files, mounted as the Deployment mounts them.
	dir := t.TempDir()
	for name, content := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secretFile := filepath.Join(dir, "connection")
	if err := os.WriteFile(secretFile, []byte(secret.StringData[filepath.Base(connectionFile)]), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvConnectionFile, secretFile)
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.New(cfg, translator.Default, nil); err != nil {
		t.Fatalf("the ConfigMap's config does not compile: %v", err)
	}
}

// TestSystemdUnitAndDockerfile checks the unit and the image run the
// command with its health port, and the unit keeps the secret out of the
// command line.
func TestSystemdUnitAndDockerfile(t *testing.T) {
	unit, err := os.ReadFile(deployPath("systemd", "pulsetranslator.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Service]", "ExecStart=/usr/local/bin/pulsetranslator run --config /etc/pulsetranslator/config.yaml --http", "EnvironmentFile=", "KillSignal=SIGTERM", "[Install]"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the systemd unit lacks %q", want)
		}
	}
	if bytes.Contains(unit, []byte("amqp://")) || bytes.Contains(unit, []byte("amqps://")) {
		t.Error("the systemd unit holds a connection string; it belongs in the EnvironmentFile")
	}
	docker, err := os.ReadFile(deployPath("container", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go build", "./cmd/pulsetranslator", "USER nonroot", "EXPOSE 9464", `CMD ["run", "--http", ":9464"]`} {
		if !bytes.Contains(docker, []byte(want)) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

// TestDefinitionsGrantPulsePermissions imports rabbitmq/definitions.json
// into the real broker and checks its user may use its own names and read
// upstream exchanges, and nothing else.
func TestDefinitionsGrantPulsePermissions(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rabbitmqctl is missing (CI=true, so this fails instead of skipping)")
		}
		t.Skip("rabbitmqctl is missing")
	}
	// The file's user and client id is "pulsetranslator", which an
	// operator's own pipeline on this broker may be using: the test imports
	// it under a name of its own, changed nowhere else.
	shipped, err := os.ReadFile(deployPath("rabbitmq", "definitions.json"))
	if err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("pttest-defs-%d", time.Now().UnixNano()%1e10)
	defs := bytes.ReplaceAll(shipped, []byte("pulsetranslator"), []byte(client))
	if bytes.Count(shipped, []byte("pulsetranslator")) != 5 {
		t.Fatalf("definitions.json names its user and client id %d times; the test expects 5 (the user, its permissions' user and three permissions)", bytes.Count(shipped, []byte("pulsetranslator")))
	}
	// The broker's node reads the file, as the rabbitmq user.
	dir, err := os.MkdirTemp("", "pulsetranslator-definitions-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "definitions.json")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, defs, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("rabbitmqctl", "import_definitions", path).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl import_definitions: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "delete_user", client).Run() })
	// The import runs asynchronously: wait for the permissions, then the user.
	var conn *amqp.Connection
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		perms, _ := exec.Command("rabbitmqctl", "list_user_permissions", client).Output()
		if bytes.Contains(perms, []byte("^(exchange/.*|queue/"+client+"/.*)")) {
			if conn, err = amqp.Dial("amqp://" + client + ":change-me@127.0.0.1:5672/"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect as the imported user: %v", err)
		}
	}
	defer conn.Close()
	try := func(what string, allowed bool, action func(ch *amqp.Channel) error) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		err = action(ch)
		if allowed && err != nil {
			t.Errorf("%s: %v, want it allowed", what, err)
		}
		if !allowed && (err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED")) {
			t.Errorf("%s: %v, want ACCESS_REFUSED", what, err)
		}
	}
	queue := "queue/" + client + "/definitions-test"
	brokertest.DeleteQueueAtEnd(t, queue)
	brokertest.DeleteExchangeAtEnd(t, "exchange/"+client+"/definitions-test")
	try("declare its own queue", true, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(queue, false, true, false, false, nil)
		return err
	})
	try("bind it to the upstream exchange", true, func(ch *amqp.Channel) error {
		return ch.QueueBind(queue, "#", "exchange/build/", false, nil)
	})
	try("declare its own exchange", true, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare("exchange/"+client+"/definitions-test", "topic", false, true, false, false, nil)
	})
	try("declare another client's exchange", false, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare("exchange/someone-else/x", "topic", false, true, false, false, nil)
	})
	try("declare another client's queue", false, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("queue/someone-else/x", false, true, false, false, nil)
		return err
	})
	try("delete the upstream exchange", false, func(ch *amqp.Channel) error {
		return ch.ExchangeDelete("exchange/build/", false, false)
	})
}

// deployPath is a path under the repository's deploy folder.
func deployPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "..", "deploy"}, parts...)...)
}
