package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DialTimeout bounds one connection attempt, TCP, TLS and the AMQP
// handshake: what a node that accepts connections but no longer answers
// (a stopped process, a partition) costs each time it is tried. A node on
// another machine answers in well under a second, even busy; amqp091-go's
// default of 30 s held a replica that long on a hung node.
const DialTimeout = 5 * time.Second

// AMQPConfig is the amqp091-go config of a connection the broker lists
// as name: heartbeats, DialTimeout, and tlsConfig for amqps://
// URLs (nil when they are amqp://; amqp091-go sends the URL's host as
// the server name and checks the certificate holds it).
func AMQPConfig(name string, tlsConfig *tls.Config) amqp.Config {
	return amqp.Config{
		Heartbeat:       10 * time.Second,
		Locale:          "en_US",
		Properties:      amqp.Table{"connection_name": name},
		Dial:            amqp.DefaultDial(DialTimeout),
		TLSClientConfig: tlsConfig,
	}
}

// Addresses are the broker addresses of urls, in their order, each with
// the name logs show: the URL without its password.
func Addresses(urls []string) []Address {
	addrs := make([]Address, len(urls))
	for i, raw := range urls {
		addrs[i] = Address{URL: raw, Display: redact(raw)}
	}
	return addrs
}

// redact is an AMQP URL with its password replaced, fit for logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable connection string)"
	}
	return u.Redacted()
}

// Dial connects once, for the commands that inspect queues, trying each
// address in turn. Errors never show the password.
func Dial(addrs []Address, cfg amqp.Config) (*amqp.Connection, error) {
	var errs []error
	for _, addr := range addrs {
		conn, err := amqp.DialConfig(addr.URL, cfg)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("connect to %s: %w", addr.Display, explainDial(err)))
	}
	if len(errs) == 0 {
		return nil, errors.New("no broker address to connect to")
	}
	return nil, errors.Join(errs...)
}
