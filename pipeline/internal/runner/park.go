package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/termtext"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	amqp "github.com/rabbitmq/amqp091-go"
)

// maxReason bounds the reason header of a parked copy.
const maxReason = 4 << 10

// missingArtifacts is the refusal of a message whose artifacts did not
// appear by its deadline; its parked copy says what each last answered.
type missingArtifacts struct {
	*translator.Refusal
	waitingFor string
}

func (m *missingArtifacts) Unwrap() error { return m.Refusal }

// parkRefused is the middleware that parks what the flow refuses: a
// refusal, a panic (recovered by Watermill's Recoverer), a publish the
// broker would not take. The input is then acked: the parked copy holds
// it. An error that only means the delivery's channel closed is passed
// on, and the broker delivers the message again.
func (f *flow) parkRefused(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		outs, err := next(msg)
		if err == nil {
			return outs, nil
		}
		ctx := msg.Context()
		d, ok := broker.DeliveryFrom(ctx)
		if !ok || ctx.Err() != nil {
			return nil, err
		}
		class, reason := classify(err)
		var missing *missingArtifacts
		waitingFor := ""
		if errors.As(err, &missing) {
			waitingFor = missing.waitingFor
		}
		return nil, f.park(ctx, d, class, reason, waitingFor)
	}
}

// classify gives the class and reason of a failure.
func classify(err error) (class, reason string) {
	var refusal *translator.Refusal
	var panicked middleware.RecoveredPanicError
	var unpublishable *publishError
	switch {
	case errors.As(err, &refusal):
		return refusal.Class, refusal.Reason
	case errors.As(err, &panicked):
		return pulse.ClassPanic, fmt.Sprintf("the handler panicked: %v", panicked.V)
	case errors.As(err, &unpublishable):
		return pulse.ClassUnpublishable, unpublishable.Error()
	}
	return pulse.ClassInternal, err.Error()
}

// park publishes a copy of the delivery to the dead queue, with why, and
// returns nil once the broker confirmed it. Parking always ends: a copy
// the broker refuses is tried again with minimal headers, and a delivery
// that cannot be parked at all is rejected, so that the input queue
// dead-letters it into the dead queue itself; it is never requeued to
// fail again.
func (f *flow) park(ctx context.Context, d *broker.Delivery, class, reason, waitingFor string) error {
	src := f.p.originOf(d, time.Now())
	err := f.publish(ctx, toDead, parkedCopy(f.p, d, src, class, reason, waitingFor, false))
	if err != nil && ctx.Err() == nil {
		f.throttle.log(slog.LevelWarn, "park minimal "+class, "the broker did not take a parked copy; parking it with minimal headers", "pipeline", f.p.cfg.Name, "class", class, "error", err.Error())
		err = f.publish(ctx, toDead, parkedCopy(f.p, d, src, class, reason, waitingFor, true))
	}
	switch {
	case err == nil:
		// Counted, shown and logged once the broker confirmed the copy:
		// a copy lost with its connection was never parked, and the
		// broker delivers the input again.
		f.p.stats.Parked.Add(1)
		if f.metrics != nil {
			f.metrics.Parked.WithLabelValues(f.p.cfg.Name, class).Inc()
		}
		f.p.recent.addParked(class, reason, src.routingKey)
		f.throttle.log(slog.LevelInfo, "park "+class, "parked in the dead queue", "pipeline", f.p.cfg.Name, "class", class, "routing_key", src.routingKey, "reason", termtext.Truncate(reason, 300))
		return nil
	case ctx.Err() != nil:
		return err
	}
	d.Reject()
	f.log.Error("cannot park a message; rejecting it, so that the input queue dead-letters it into the dead queue (x-death reason rejected)", "class", class, "routing_key", src.routingKey, "error", err.Error())
	return err
}

// ParkHeaders are the headers of the parked copy of a delivery that came
// from upstream: the upstream headers that fit (see broker.CarryHeaders),
// then the refusal and where the message came from.
func ParkHeaders(pipelineName string, d *broker.Delivery, class, reason string) amqp.Table {
	return parkHeaders(pipelineName, d, originOf(d, time.Time{}), class, reason, "", false)
}

// parkedCopy is the copy of a delivery published to the dead queue: the
// body and content type as they came, and the headers of parkHeaders. A
// body over limits.max_input_bytes keeps only its first
// process.MaxParkedCutBytes, and the headers give its size and SHA-256:
// what one message may park stays bounded.
func parkedCopy(p *pipelineRun, d *broker.Delivery, src origin, class, reason, waitingFor string, minimal bool) broker.Outgoing {
	out := broker.Outgoing{
		Exchange:    p.topology.ParkExchange,
		RoutingKey:  src.routingKey,
		ContentType: d.ContentType,
		MessageID:   d.MessageID,
		Headers:     parkHeaders(p.cfg.Name, d, src, class, reason, waitingFor, minimal),
		Body:        d.Body,
	}
	if len(d.Body) > p.proc.MaxInputBytes() {
		sum := sha256.Sum256(d.Body)
		out.Body = d.Body[:min(len(d.Body), process.MaxParkedCutBytes)]
		out.Headers[pulse.HeaderOriginalBytes] = strconv.Itoa(len(d.Body))
		out.Headers[pulse.HeaderOriginalSHA256] = hex.EncodeToString(sum[:])
	}
	return out
}

// parkHeaders are a parked copy's headers. The translator's own are set
// last, over any carried header; minimal keeps only those.
func parkHeaders(pipelineName string, d *broker.Delivery, src origin, class, reason, waitingFor string, minimal bool) amqp.Table {
	h := amqp.Table{}
	if !minimal {
		carried := broker.CarryHeaders(src.upstream)
		for k, v := range carried.Headers {
			h[k] = v
		}
		if cut := cutHeaders(src, carried); cut != "" {
			h[pulse.HeaderCutHeaders] = termtext.Truncate(cut, maxReason)
		}
		h[pulse.HeaderOriginContentType] = termtext.Truncate(d.ContentType, 255)
		h[pulse.HeaderOriginMessageID] = termtext.Truncate(d.MessageID, 255)
		h[pulse.HeaderOriginRedelivered] = strconv.FormatBool(d.Redelivered)
		if waitingFor != "" {
			h[pulse.HeaderWaitingFor] = waitingFor
		}
	}
	h[pulse.HeaderClass] = class
	h[pulse.HeaderReason] = termtext.Truncate(reason, maxReason)
	h[pulse.HeaderPipeline] = pipelineName
	h[pulse.HeaderOriginExchange] = src.exchange
	h[pulse.HeaderOriginRoutingKey] = src.routingKey
	return h
}
