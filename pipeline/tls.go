package pipeline

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// usesTLS reports whether the connection string is amqps://.
func (c *Config) usesTLS() bool {
	u, err := url.Parse(c.Connection)
	return err == nil && u.Scheme == "amqps"
}

// amqpConfig is the amqp091-go config of a connection named name:
// heartbeats, a 30s dial timeout, and tlsCfg for an amqps:// URL.
func (c *Config) amqpConfig(name string, tlsCfg *tls.Config) *amqp.Config {
	cfg := &amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": name + " " + c.ClientID},
		Dial:       amqp.DefaultDial(30 * time.Second),
	}
	if c.usesTLS() {
		cfg.TLSClientConfig = tlsCfg
	}
	return cfg
}

// clientTLS builds the TLS config of amqps:// connections: TLS 1.2 or
// later, the broker's certificate verified against tls.ca_file or the
// system's authorities, and a client certificate when one is configured.
// amqp091-go sends the URL's host as the server name (SNI) and checks the
// certificate holds it.
func (c *Config) clientTLS() (*tls.Config, error) {
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

// explainTLS adds what to do to a connection error caused by a broker
// certificate that does not verify.
func explainTLS(err error) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &host):
		return fmt.Errorf("the broker's TLS certificate is not valid for this host name; connect by a name the certificate holds: %w", err)
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("the broker's TLS certificate does not verify; set tls.ca_file to the authority that signed it: %w", err)
	}
	return err
}
