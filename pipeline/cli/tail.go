package cli

// The tail command follows any Pulse exchange: it binds an auto-delete
// queue queue/<clientId>/tail-<random> to the exchange with a pattern and
// prints each message, pretty on a terminal and as JSON lines otherwise.
// When the exchange is an output of the config's pipelines, the routing key
// is split into its named fields (see "pulsetranslator docs"). The
// pulsetail command is this command alone.
//
//	pulsetranslator tail --exchange exchange/pulsetranslator/build/normalized --key 'build.mozilla-central.#'

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/deadqueue"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/reference"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// tailLine is one message as a JSON line.
type tailLine struct {
	Exchange   string            `json:"exchange"`
	RoutingKey string            `json:"routing_key"`
	Kind       string            `json:"kind,omitempty"`
	Fields     map[string]string `json:"fields,omitempty"`
	CC         []string          `json:"cc,omitempty"`
	MessageID  string            `json:"message_id,omitempty"`
	Body       json.RawMessage   `json:"body"`
}

func tailCommand(ctx context.Context, prog Program, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pulsetail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "pulsetranslator config, for the connection, the client id and the routing-key reference (default: the embedded default)")
	exchange := fs.String("exchange", "", "exchange to follow (default: the first output of the first pipeline)")
	key := fs.String("key", "#", "binding pattern")
	count := fs.Int("count", 0, "stop after this many messages (default: never)")
	jsonLines := fs.Bool("json", false, "JSON lines even on a terminal")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pulsetail: %v\n", err)
		return 1
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		return fail(err)
	}
	if *exchange == "" {
		*exchange = cfg.Pipelines[0].Outputs[0].Exchange
	}
	entries := referenceEntries(cfg, *exchange)
	conn, err := runner.Dial(cfg, "pulsetail")
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	queue := "queue/" + cfg.ClientID + "/tail-" + hex.EncodeToString(suffix)
	if _, err := ch.QueueDeclare(queue, false, true, true, false, amqp.Table{"x-max-length": int64(10000)}); err != nil {
		return fail(fmt.Errorf("declare %s: %w", queue, err))
	}
	if err := ch.QueueBind(queue, *key, *exchange, false, nil); err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return fail(deadqueue.MissingError(cfg, "exchange", *exchange))
		}
		return fail(fmt.Errorf("bind %s to %s with %q: %w", queue, *exchange, *key, err))
	}
	deliveries, err := ch.Consume(queue, "", true, true, false, false, nil)
	if err != nil {
		return fail(err)
	}
	pretty := !*jsonLines && isTerminal(stdout)
	if pretty {
		fmt.Fprintf(stderr, "following %s with %q through %s (Ctrl-C to stop)\n", *exchange, *key, queue)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for seen := 0; *count == 0 || seen < *count; seen++ {
		select {
		case <-ctx.Done():
			return 0
		case d, ok := <-deliveries:
			if !ok {
				return fail(fmt.Errorf("the broker closed the subscription"))
			}
			l := describeDelivery(d, entries)
			if pretty {
				printPretty(stdout, l)
			} else if err := enc.Encode(l); err != nil {
				return fail(err)
			}
		}
	}
	return 0
}

// referenceEntries are the reference entries of the pipeline outputs on
// exchange, or none when it is not one.
func referenceEntries(cfg *config.Config, exchange string) []reference.ReferenceEntry {
	ship, err := process.Ship(translator.Default)
	if err != nil {
		return nil
	}
	var out []reference.ReferenceEntry
	for _, p := range cfg.Pipelines {
		ref, err := reference.BuildReference(cfg, p.Name, translator.Default, ship)
		if err != nil {
			continue
		}
		for _, e := range ref.Entries {
			if ref.ExchangePrefix+e.Exchange == exchange {
				out = append(out, e)
			}
		}
	}
	return out
}

// describe makes the line of a delivery, with its routing key parsed by
// the first entry it fits.
func describeDelivery(d amqp.Delivery, entries []reference.ReferenceEntry) tailLine {
	l := tailLine{Exchange: d.Exchange, RoutingKey: d.RoutingKey, MessageID: d.MessageId, Body: d.Body}
	if !json.Valid(d.Body) {
		quoted, _ := json.Marshal(string(d.Body))
		l.Body = quoted
	}
	if cc, ok := d.Headers["CC"].([]interface{}); ok {
		for _, route := range cc {
			l.CC = append(l.CC, fmt.Sprint(route))
		}
	}
	for _, e := range entries {
		if fields, ok := e.ParseKey(d.RoutingKey); ok {
			l.Kind, l.Fields = e.Name, fields
			break
		}
	}
	return l
}

// printPretty writes a delivery for a person. Everything in it came from
// the exchange, so it goes through termtext: a terminal obeys no escape
// sequence a message carries.
func printPretty(w io.Writer, l tailLine) {
	fmt.Fprintf(w, "── %s  %s\n", termtext.String(l.RoutingKey), termtext.String(l.MessageID))
	if len(l.Fields) > 0 {
		names := make([]string, 0, len(l.Fields))
		for name := range l.Fields {
			names = append(names, name)
		}
		sort.Strings(names)
		var parts []string
		for _, name := range names {
			parts = append(parts, termtext.String(name+"="+l.Fields[name]))
		}
		fmt.Fprintf(w, "   %s: %s\n", l.Kind, strings.Join(parts, " "))
	}
	if len(l.CC) > 0 {
		cc := make([]string, len(l.CC))
		for i, route := range l.CC {
			cc[i] = termtext.String(route)
		}
		fmt.Fprintf(w, "   cc: %s\n", strings.Join(cc, " "))
	}
	var body bytes.Buffer
	if json.Indent(&body, l.Body, "   ", "  ") == nil {
		fmt.Fprintf(w, "   %s\n", termtext.JSON(body.Bytes()))
	}
}
