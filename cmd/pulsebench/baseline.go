package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pulsetranslator/pulsetranslator/pipeline"
)

// baseline is the bare worker the translator is measured against: plain
// amqp091-go, no translation. Each of its consumers has its own channel
// with the same prefetch, takes an input, publishes the outputs the
// translator would (pre-computed: same bodies, routing keys, CC and ids),
// persistent, waits for their confirms together, and acks the input. An
// input the translator refuses it parks as the translator does: the input,
// with the same headers, to a dead exchange of its own, persistent and
// confirmed.
type baseline struct {
	conn         *amqp.Connection
	queue        string
	exchange     string
	deadExchange string
	consumers    int
	prefetch     int
	stream       *stream
}

// run consumes until ctx ends.
func (b *baseline) run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, b.consumers)
	for range b.consumers {
		ch, err := b.conn.Channel()
		if err != nil {
			return err
		}
		if err := ch.Qos(b.prefetch, 0, false); err != nil {
			return err
		}
		if err := ch.Confirm(false); err != nil {
			return err
		}
		deliveries, err := ch.Consume(b.queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer ch.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case d, ok := <-deliveries:
					if !ok {
						return
					}
					if err := b.handle(ch, d); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (b *baseline) handle(ch *amqp.Channel, d amqp.Delivery) error {
	i, err := strconv.Atoi(fmt.Sprint(d.Headers[headerIndex]))
	if err != nil || i < 0 || i >= len(b.stream.outputs) {
		return d.Ack(false)
	}
	if park := b.stream.parks[i]; park != nil {
		dc, err := ch.PublishWithDeferredConfirm(b.deadExchange, "", false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, Timestamp: time.Now().UTC(), Headers: park, Body: d.Body})
		if err != nil {
			return err
		}
		if !dc.Wait() {
			return fmt.Errorf("the broker nacked a baseline park")
		}
		return d.Ack(false)
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(b.stream.outputs[i]))
	for _, o := range b.stream.outputs[i] {
		pub := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: o.id, Body: o.body}
		if len(o.cc) > 0 {
			cc := make([]interface{}, len(o.cc))
			for j, route := range o.cc {
				cc[j] = route
			}
			pub.Headers = amqp.Table{"CC": cc}
		}
		dc, err := ch.PublishWithDeferredConfirm(b.exchange, o.routingKey, false, false, pub)
		if err != nil {
			return err
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		if !dc.Wait() {
			return fmt.Errorf("the broker nacked a baseline publish")
		}
	}
	return d.Ack(false)
}

// serveBaseline is the -serve-baseline process: the bare worker, in a
// process of its own like a translator, consuming until SIGTERM. It
// connects to the URL in PULSE_CONNECTION_STRING, as the translator does,
// or to -broker.
func serveBaseline(o options) error {
	su, err := prepare(o, io.Discard)
	if err != nil {
		return err
	}
	defer su.cleanup()
	url := os.Getenv(pipeline.EnvConnection)
	if url == "" {
		url = o.broker
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", pipeline.RedactURL(url), err)
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	worker := &baseline{conn: conn, queue: su.nm.baselineQueue, exchange: su.nm.output, deadExchange: su.nm.baselineDeadExchange,
		consumers: o.consumers, prefetch: o.prefetch, stream: su.stream}
	return worker.run(ctx)
}

// baselineArgv is the command line of a baseline worker process for o.
func baselineArgv(o options) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{self, "-serve-baseline", "-corpus", o.corpus, "-mix", o.mix, "-client", o.client,
		"-n", strconv.Itoa(o.n), "-prefetch", strconv.Itoa(o.prefetch), "-consumers", strconv.Itoa(o.consumers * o.replicas)}, nil
}
