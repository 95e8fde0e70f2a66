package pulse

import "strings"

// Headers the translator writes on the copies of a message it holds back
// in a wait queue or parks in the dead queue. Only the client writes to
// its wait and dead exchanges, and a copy carries the upstream headers
// that share these names renamed (x-original-…), so these are always the
// translator's own.
const (
	// HeaderClass is the refusal class of a parked copy, such as
	// "malformed_json".
	HeaderClass = "x-pulsetranslator-class"
	// HeaderReason is the refusal reason of a parked copy.
	HeaderReason = "x-pulsetranslator-reason"
	// HeaderPipeline names the pipeline that parked it.
	HeaderPipeline = "x-pulsetranslator-pipeline"
	// HeaderCutHeaders names the upstream headers a copy does not carry
	// for their size, with their sizes.
	HeaderCutHeaders = "x-pulsetranslator-cut-headers"
	// HeaderOriginalBytes is, on the parked copy of a body over
	// limits.max_input_bytes (which keeps only its first
	// MaxParkedCutBytes), the body's size; HeaderOriginalSHA256 its
	// SHA-256, in hex. Such a copy cannot be replayed.
	HeaderOriginalBytes  = "x-pulsetranslator-original-bytes"
	HeaderOriginalSHA256 = "x-pulsetranslator-original-sha256"

	// HeaderOriginExchange is the exchange a parked message was first
	// published to.
	HeaderOriginExchange = "x-pulse-exchange"
	// HeaderOriginRoutingKey is its upstream routing key.
	HeaderOriginRoutingKey = "x-pulse-routing-key"
	// HeaderOriginContentType is the content type it came with.
	HeaderOriginContentType = "x-pulse-content-type"
	// HeaderOriginMessageID is the message id it came with.
	HeaderOriginMessageID = "x-pulse-message-id"
	// HeaderOriginRedelivered is "true" when it had been delivered before.
	HeaderOriginRedelivered = "x-pulse-redelivered"

	// HeaderSourceExchange is the upstream exchange of a message in a wait
	// queue: RabbitMQ brings it back into the input queue from the wait
	// exchange, so these headers say where it first came from and how
	// long it has waited. They are trusted only on messages that arrive
	// from the pipeline's own wait exchange.
	HeaderSourceExchange = "x-pulsetranslator-source-exchange"
	// HeaderSourceRoutingKey is its upstream routing key.
	HeaderSourceRoutingKey = "x-pulsetranslator-source-routing-key"
	// HeaderAttempt counts its waits so far: 1 in the first wait queue.
	HeaderAttempt = "x-pulsetranslator-attempt"
	// HeaderFirstSeen is when the pipeline first saw it (RFC 3339, UTC).
	HeaderFirstSeen = "x-pulsetranslator-first-seen"
	// HeaderWaitingFor lists the artifacts it waits for and what each
	// answered at the last check.
	HeaderWaitingFor = "x-pulsetranslator-waiting-for"
	// HeaderDue is when a waiting copy's wait queue should hand it back
	// (RFC 3339, UTC): the moment it was sent there plus the tier's TTL.
	HeaderDue = "x-pulsetranslator-due"
	// HeaderCanary marks a canary: a message of no content the
	// translator sends through its first wait tier every minute, to see
	// that waiting messages come back (see docs/cluster.md).
	HeaderCanary = "x-pulsetranslator-canary"
)

// UnconfirmedField is the payload field that a message published past its
// deadline (on_deadline: publish) carries: the URLs of its artifacts that
// never answered ready. Schemas of such pipelines must allow it.
const UnconfirmedField = "artifacts_unconfirmed"

// Reserved reports whether a header name means something to the broker
// (CC, BCC, x-death and its kin, x-delivery-count) or to the translator
// (x-pulse-…, x-pulsetranslator-…). A copy of a message carries an
// upstream header of such a name renamed x-original-<name>, so that it
// neither routes the copy nor passes for the broker's or the
// translator's own; and of a copy that comes back, the headers of such
// names are the broker's or the translator's, never upstream's.
func Reserved(name string) bool {
	switch name {
	case "CC", "BCC", "x-death", "x-delivery-count":
		return true
	}
	return strings.HasPrefix(name, "x-pulse-") || strings.HasPrefix(name, "x-pulsetranslator-") ||
		strings.HasPrefix(name, "x-first-death-") || strings.HasPrefix(name, "x-last-death-")
}
