package bench

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

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"

	amqp "github.com/rabbitmq/amqp091-go"
)

// baseline is the bare worker the translator is measured against: the
// strongest simple amqp091-go worker doing the same job, and nothing of
// the translator's design. Each channel (one per -baseline-channels, with
// -baseline-prefetch) consumes and publishes: for each delivery it
// publishes the outputs the translator would give (pre-computed: same
// bodies, routing keys, CC and ids), persistent, with deferred confirms,
// and goes on to the next delivery at once; a second goroutine takes the
// deliveries in order and waits for their own confirms. It acks them
// with one multiple ack whenever no further delivery is waiting for it,
// or when half the prefetch is confirmed but unacked, so acks that come
// together share a frame, as the translator's do. So many messages are
// in flight and confirms are pipelined. An input the
// translator refuses it parks as the translator does: the input, with
// the same headers, to a dead exchange of its own, persistent and
// confirmed.
type baseline struct {
	conn         *amqp.Connection
	queue        string
	exchange     string
	deadExchange string
	channels     int
	prefetch     int
	stream       *stream
}

// inflight is one delivery whose publishes await their confirms.
type inflight struct {
	d        amqp.Delivery
	confirms []*amqp.DeferredConfirmation
}

// run consumes until ctx ends.
func (b *baseline) run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*b.channels)
	for range b.channels {
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
		pending := make(chan inflight, b.prefetch)
		wg.Go(func() {
			// Acks deliveries once their own confirms are in; they come
			// in publishing order on the one channel, so one multiple ack
			// answers every confirmed one so far.
			var last uint64
			unacked := 0
			for p := range pending {
				for _, dc := range p.confirms {
					if !dc.Wait() {
						errs <- fmt.Errorf("the broker nacked a baseline publish")
						return
					}
				}
				last = p.d.DeliveryTag
				if unacked++; len(pending) > 0 && unacked < b.prefetch/2 {
					continue
				}
				if err := ch.Ack(last, true); err != nil {
					errs <- err
					return
				}
				unacked = 0
			}
		})
		wg.Go(func() {
			defer close(pending)
			for {
				select {
				case <-ctx.Done():
					return
				case d, ok := <-deliveries:
					if !ok {
						return
					}
					confirms, err := b.publish(ch, d)
					if err != nil {
						errs <- err
						return
					}
					pending <- inflight{d, confirms}
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

// publish sends what the translator would for d, without waiting.
func (b *baseline) publish(ch *amqp.Channel, d amqp.Delivery) ([]*amqp.DeferredConfirmation, error) {
	i, err := strconv.Atoi(fmt.Sprint(d.Headers[headerIndex]))
	if err != nil || i < 0 || i >= len(b.stream.outputs) {
		return nil, nil
	}
	if park := b.stream.parks[i]; park != nil {
		dc, err := ch.PublishWithDeferredConfirm(b.deadExchange, d.RoutingKey, false, false, amqp.Publishing{
			ContentType: d.ContentType, DeliveryMode: amqp.Persistent, Timestamp: time.Now().UTC(), Headers: park, Body: d.Body})
		return []*amqp.DeferredConfirmation{dc}, err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(b.stream.outputs[i]))
	now := time.Now().UTC()
	for _, o := range b.stream.outputs[i] {
		pub := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: o.id, Timestamp: now, Body: o.body}
		if len(o.cc) > 0 {
			cc := make([]interface{}, len(o.cc))
			for j, route := range o.cc {
				cc[j] = route
			}
			pub.Headers = amqp.Table{"CC": cc}
		}
		dc, err := ch.PublishWithDeferredConfirm(b.exchange, o.routingKey, false, false, pub)
		if err != nil {
			return nil, err
		}
		confirms = append(confirms, dc)
	}
	return confirms, nil
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
	url := os.Getenv(config.EnvConnection)
	if url == "" {
		url = o.broker
	}
	conn, err := dialAny(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	worker := &baseline{conn: conn, queue: su.nm.baselineQueue, exchange: su.nm.output, deadExchange: su.nm.baselineDeadExchange,
		channels: o.baselineChannels, prefetch: o.baselinePrefetch, stream: su.stream}
	return worker.run(ctx)
}

// baselineArgv is the command line of a baseline worker process for o.
func baselineArgv(o options) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{self, Command, "-serve-baseline", "-corpus", o.corpus, "-mix", o.mix, "-client", o.client, "-gate=" + strconv.FormatBool(o.gate), "-gate-url", o.gateURL,
		"-n", strconv.Itoa(o.n), "-baseline-prefetch", strconv.Itoa(o.baselinePrefetch), "-baseline-channels", strconv.Itoa(o.baselineChannels * o.replicas), "-queue-type", o.queueType}, nil
}
