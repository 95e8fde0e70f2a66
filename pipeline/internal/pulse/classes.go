package pulse

import "github.com/pulsetranslator/pulsetranslator/pipeline/translator"

// Refusal classes: the x-pulsetranslator-class of a parked message.
const (
	ClassTooLarge    = "too_large"
	ClassNotUTF8     = "not_utf8"
	ClassMalformed   = "malformed_json"
	ClassTooDeep     = "too_deep"
	ClassRule        = "rule"
	ClassSchema      = "schema"
	ClassInternal    = "internal"
	ClassBadRoute    = "bad_routing_key"
	ClassPanic       = "panic"
	ClassUnknownTo   = "unknown_output"
	ClassEmptyResult = "no_outputs"
	// ClassBadArtifactURL: a wait_for rule gave a URL that is not http(s),
	// or that wait.check does not let the gate check (not in the allow
	// list, or a private address).
	ClassBadArtifactURL = "bad_artifact_url"
	// ClassContentType: the delivery's content type says it is not JSON.
	ClassContentType = "bad_content_type"
	// ClassWaitQueueFull: the wait queue was at its max_length.
	ClassWaitQueueFull = "wait_queue_full"
	// ClassArtifactsMissing: the artifacts did not appear by the deadline.
	ClassArtifactsMissing = "artifacts_missing"
	// ClassTooManyOutputs: the input gave more outputs than
	// limits.max_outputs (the plugin API's class).
	ClassTooManyOutputs = translator.ClassTooManyOutputs
	// ClassOutputsTooLarge: the bodies of the input's outputs add up to
	// more than limits.max_output_bytes.
	ClassOutputsTooLarge = "outputs_too_large"
	// ClassUnsafeNumber: an output holds an integer beyond ±2^53, or a
	// number beyond a double's range, which consumers cannot read exactly.
	ClassUnsafeNumber = "unsafe_number"
	// ClassUnpublishable: the broker did not take the outputs (or the
	// waiting copy) after every attempt.
	ClassUnpublishable = "unpublishable"
)
