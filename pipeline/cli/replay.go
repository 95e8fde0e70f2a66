package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"

	amqp "github.com/rabbitmq/amqp091-go"
)

// replayWindow is how many confirms a replay keeps outstanding.
const replayWindow = 256

func replayCommand(prog Program, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("replay", stderr)
	configPath := fs.String("config", "", "config file, for the connection (default: the embedded default)")
	exchange := fs.String("exchange", "", "exchange to publish to (required)")
	routingKey := fs.String("routing-key", "", "routing key for every message (default: each file's _meta.routing_key)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the broker's confirm of a message before giving up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *exchange == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: pulsetranslator replay --exchange EXCHANGE [--routing-key KEY] [--timeout D] [--config FILE] PATH...")
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pulsetranslator replay: %v\n", err)
		return 1
	}
	var files []string
	for _, root := range fs.Args() {
		if err := walkFiles(root, func(path string) error { files = append(files, path); return nil }); err != nil {
			return fail(err)
		}
	}
	cfg, err := prog.loadConfig(*configPath)
	if err != nil {
		return fail(err)
	}
	conn, err := runner.Dial(cfg, "pulsetranslator replay")
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	if err := ch.Confirm(false); err != nil {
		return fail(err)
	}
	progress := newProgress(stderr, len(files))
	pending := make([]*amqp.DeferredConfirmation, 0, replayWindow)
	confirmed := 0
	flush := func() error {
		for _, dc := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			acked, err := dc.WaitContext(ctx)
			cancel()
			switch {
			case err != nil:
				return fmt.Errorf("no confirm of a publish to %s within --timeout %s (%d confirmed before it): the broker may be overloaded, or a queue bound to the exchange may not answer: %w", *exchange, *timeout, confirmed, err)
			case !acked:
				return fmt.Errorf("the broker nacked a publish to %s", *exchange)
			}
			confirmed++
			progress.show(confirmed)
		}
		pending = pending[:0]
		return nil
	}
	for _, path := range files {
		body, err := os.ReadFile(path)
		if err != nil {
			return fail(err)
		}
		key := *routingKey
		if key == "" {
			var f struct {
				Meta struct {
					RoutingKey string `json:"routing_key"`
				} `json:"_meta"`
			}
			if json.Unmarshal(body, &f) != nil || f.Meta.RoutingKey == "" {
				return fail(fmt.Errorf("%s has no _meta.routing_key; give --routing-key", path))
			}
			key = f.Meta.RoutingKey
		}
		dc, err := ch.PublishWithDeferredConfirm(*exchange, key, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
		})
		if err != nil {
			return fail(fmt.Errorf("publish %s: %w", path, err))
		}
		if pending = append(pending, dc); len(pending) == replayWindow {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	progress.done()
	fmt.Fprintf(stdout, "published %d message(s) to %s, every one confirmed\n", confirmed, *exchange)
	return 0
}

// progress draws a progress bar on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	total int
	on    bool
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, on: isTerminal(w)}
}

func (p *progress) show(n int) {
	if !p.on || p.total == 0 {
		return
	}
	const width = 40
	filled := width * n / p.total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d", bar, n, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
