package config

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Connections are the AMQP URLs of a broker's nodes: one for a single
// node (or a load balancer in front of a cluster), several for the nodes
// of a cluster. In YAML it is a string, a comma-separated string, or a
// list; PULSE_CONNECTION_STRING holds the same, comma-separated.
type Connections []string

// ParseConnections splits a list of URLs separated by commas or newlines
// (as a connection file may hold them), dropping empty entries and the
// spaces around each.
func ParseConnections(s string) Connections {
	var urls Connections
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if part = strings.TrimSpace(part); part != "" {
			urls = append(urls, part)
		}
	}
	return urls
}

// UnmarshalYAML reads a string (comma-separated) or a list of strings.
func (c *Connections) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		*c = ParseConnections(node.Value)
		return nil
	case yaml.SequenceNode:
		var urls Connections
		for _, item := range node.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: connection: each entry is one AMQP URL", item.Line)
			}
			urls = append(urls, ParseConnections(item.Value)...)
		}
		*c = urls
		return nil
	}
	return fmt.Errorf("line %d: connection: give an AMQP URL, or a list of them (one per node)", node.Line)
}

// Redacted is the list as logs may show it: each URL without its password,
// comma-separated.
func (c Connections) Redacted() string {
	shown := make([]string, len(c))
	for i, u := range c {
		shown[i] = RedactURL(u)
	}
	return strings.Join(shown, ",")
}

// RedactURL returns an AMQP URL with its password replaced, fit for logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable connection string)"
	}
	return u.Redacted()
}

// HostOf returns the host and port of an AMQP URL, without user or
// password: what a page may show of where a process is connected.
func HostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable connection string)"
	}
	return u.Host
}

// connectionFromEnvironment applies PULSE_CONNECTION_STRING or
// PULSE_CONNECTION_STRING_FILE, either of which replaces whatever the
// file says of the connection.
func (c *Config) connectionFromEnvironment() error {
	str, file := os.Getenv(EnvConnection), os.Getenv(EnvConnectionFile)
	switch {
	case str != "" && file != "":
		return fmt.Errorf("both %s and %s are set; set one", EnvConnection, EnvConnectionFile)
	case str != "":
		c.Connection, c.ConnectionFile, c.ConnectionCommand = ParseConnections(str), "", nil
	case file != "":
		c.Connection, c.ConnectionFile, c.ConnectionCommand = nil, file, nil
	}
	return nil
}

// checkConnectionSource checks that at most one of connection,
// connection_file and connection_command is given, reads the connection
// file (so that its URLs are checked as connection's are), and finds the
// connection command's program.
func (c *Config) checkConnectionSource(fail func(path, format string, args ...any)) {
	given := 0
	for _, set := range []bool{len(c.Connection) > 0 && !c.connectionFromFile, c.ConnectionFile != "", len(c.ConnectionCommand) > 0} {
		if set {
			given++
		}
	}
	if given > 1 {
		fail("connection", "give one of connection, connection_file and connection_command")
		return
	}
	switch {
	case c.ConnectionFile != "":
		data, err := os.ReadFile(c.ConnectionFile)
		if err != nil {
			fail("connection_file", "%v: the file must exist and hold the connection string (a Kubernetes Secret mounted as a volume, for example)", err)
			return
		}
		c.Connection, c.connectionFromFile = ParseConnections(string(data)), true
		if len(c.Connection) == 0 {
			fail("connection_file", "%s holds no connection string: write the AMQP URL (amqp://user:password@host:5672/vhost) into it", c.ConnectionFile)
		}
	case len(c.ConnectionCommand) > 0:
		if _, err := exec.LookPath(c.ConnectionCommand[0]); err != nil {
			fail("connection_command", "%v: give the program's path, then its arguments, as a list", err)
		}
	}
	if c.RecycleInterval < 0 || c.RecycleInterval > 0 && c.RecycleInterval < time.Second {
		fail("recycle_interval", "%s: give a duration of at least 1s, such as 1h, or leave it out", c.RecycleInterval)
	}
}

// ConnectionSummary says where the connection comes from, without a
// password: the URLs, the file or the command.
func (c *Config) ConnectionSummary() string {
	switch {
	case len(c.ConnectionCommand) > 0:
		return "from the command " + c.ConnectionCommand[0]
	case c.ConnectionFile != "":
		return c.Connection.Redacted() + " (from " + c.ConnectionFile + ")"
	}
	return c.Connection.Redacted()
}
