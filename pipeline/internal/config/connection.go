package config

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Connections are the AMQP URLs of a broker's nodes: one for a single
// node (or a load balancer in front of a cluster), several for the nodes
// of a cluster. In YAML it is a string, a comma-separated string, or a
// list; PULSE_CONNECTION_STRING holds the same, comma-separated.
type Connections []string

// ParseConnections splits a comma-separated list of URLs, dropping empty
// entries and spaces around each.
func ParseConnections(s string) Connections {
	var urls Connections
	for _, part := range strings.Split(s, ",") {
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
