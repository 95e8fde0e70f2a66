package broker

import (
	"errors"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQPConfig is the amqp091-go config of cfg's connections, named name
// for the broker's connection list: heartbeats, a 30s dial timeout, and
// TLS with SNI for amqps:// URLs.
func AMQPConfig(cfg *config.Config, name string) (amqp.Config, error) {
	c := amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": name + " " + cfg.ClientID},
		Dial:       amqp.DefaultDial(30 * time.Second),
	}
	if cfg.UsesTLS() {
		tlsCfg, err := cfg.ClientTLS()
		if err != nil {
			return c, err
		}
		c.TLSClientConfig = tlsCfg
	}
	return c, nil
}

// Addresses are cfg's broker addresses, in the config's order, each with
// the name logs show.
func Addresses(cfg *config.Config) []Address {
	addrs := make([]Address, len(cfg.Connection))
	for i, raw := range cfg.Connection {
		addrs[i] = Address{URL: raw, Display: config.RedactURL(raw)}
	}
	return addrs
}

// Dial connects once, for the commands that inspect queues, trying each
// of cfg's addresses in turn. Errors never show the password.
func Dial(cfg *config.Config, name string) (*amqp.Connection, error) {
	amqpCfg, err := AMQPConfig(cfg, name)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, addr := range Addresses(cfg) {
		conn, err := amqp.DialConfig(addr.URL, amqpCfg)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, errors.New("connect to "+addr.Display+": "+explainDial(err).Error()))
	}
	return nil, errors.Join(errs...)
}
