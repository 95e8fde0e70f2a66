package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
)

// UsesTLS reports whether the connection strings are amqps://.
func (c *Config) UsesTLS() bool {
	if len(c.Connection) == 0 {
		return false
	}
	u, err := url.Parse(c.Connection[0])
	return err == nil && u.Scheme == "amqps"
}

// ClientTLS builds the TLS config of amqps:// connections: TLS 1.2 or
// later, the broker's certificate verified against tls.ca_file or the
// system's authorities, and a client certificate when one is configured.
// amqp091-go sends the URL's host as the server name (SNI) and checks the
// certificate holds it.
func (c *Config) ClientTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
		}
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file and tls.key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// BrokerTLS is the TLS config of the broker connections: ClientTLS when
// the connection strings are amqps:// (or come from a command), nil when
// they are amqp://.
func (c *Config) BrokerTLS() (*tls.Config, error) {
	if len(c.ConnectionCommand) > 0 {
		// Its scheme is known only once it runs; amqp091-go uses the
		// TLS config only for amqps:// URLs.
		return c.ClientTLS()
	}
	if !c.UsesTLS() {
		return nil, nil
	}
	return c.ClientTLS()
}
