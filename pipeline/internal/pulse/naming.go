// Package pulse holds the names of the Pulse wire contract, one place for
// each: the exchanges and queues a pipeline declares (naming.go), the
// headers the translator writes on its copies and the names it reserves
// (headers.go), the refusal classes of parked messages (classes.go), and
// how a topic exchange matches routing keys (topic.go).
package pulse

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Pulse names. A client may configure and write only
// ^(exchange|queue)/<clientId>/.* and read ^exchange/.* and its own queues.

// namePattern is what a client id or pipeline name may look like.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidName reports whether s may be a client id or a pipeline name:
// letters, digits, '.', '_' and '-', starting with a letter or a digit.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// ExchangeName returns the full name of a client's exchange: name itself
// when it already starts with "exchange/", else exchange/<client>/<name>.
func ExchangeName(client, name string) string {
	if strings.HasPrefix(name, "exchange/") {
		return name
	}
	return "exchange/" + client + "/" + name
}

// ShortName strips exchange/<client>/ from an exchange name.
func ShortName(client, exchange string) string {
	return strings.TrimPrefix(exchange, "exchange/"+client+"/")
}

// InputQueue names a pipeline's input queue: queue/<client>/<pipeline>.
func InputQueue(client, pipeline string) string { return "queue/" + client + "/" + pipeline }

// DeadQueue names a pipeline's dead queue: queue/<client>/<pipeline>/dead.
func DeadQueue(client, pipeline string) string { return InputQueue(client, pipeline) + "/dead" }

// DeadExchange names the exchange that routes into the dead queue. Pulse
// lets a client publish only to its own exchanges, so parked messages and
// dead-lettered overflow reach the dead queue through it.
func DeadExchange(client, pipeline string) string {
	return "exchange/" + client + "/" + pipeline + "/dead"
}

// WaitQueue names the wait queue of one tier of a pipeline's readiness
// gate: queue/<client>/<pipeline>/wait/<tier>, such as …/wait/15s.
func WaitQueue(client, pipeline string, tier time.Duration) string {
	return InputQueue(client, pipeline) + "/wait/" + TierName(tier)
}

// WaitExchange names the direct exchange through which, in versions
// before HoldExchange, waiting messages reached their tier's queue
// (routing key: the tier's name) and came back into the input queue
// (routing key RetryKey) when their TTL expired. Wait queues declared
// then still dead-letter through it, so the input stays bound to it.
func WaitExchange(client, pipeline string) string {
	return "exchange/" + client + "/" + pipeline + "/wait"
}

// HoldExchange names the direct exchange through which a pipeline holds
// messages back in its wait queues (routing key: the tier's name), and
// through which they come back into the input queue when their TTL
// expires, as replayed dead messages do (routing key RetryKey). It is
// named in the client's queue/ namespace, which Pulse lets no other client
// read, so that no other client can bind a queue to it: a queue of
// theirs that refused the copies would make the broker nack every one.
func HoldExchange(client, pipeline string) string {
	return InputQueue(client, pipeline) + "/hold"
}

// ParkExchange names the fanout exchange through which a pipeline parks
// messages in its dead queue; private for the reason HoldExchange is.
func ParkExchange(client, pipeline string) string {
	return InputQueue(client, pipeline) + "/park"
}

// RetryKey is the routing key with which expired waiting messages return
// to the input queue.
const RetryKey = "retry"

// TierName names a wait tier in the fewest units that are exact: 15s, 1m,
// 2h, 250ms.
func TierName(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d >= time.Second && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// CheckOwnExchange reports an exchange outside the client's namespace.
func CheckOwnExchange(client, exchange string) error {
	prefix := "exchange/" + client + "/"
	if !strings.HasPrefix(exchange, prefix) || len(exchange) == len(prefix) {
		return fmt.Errorf("%q is outside this client's namespace: Pulse lets client %q declare and publish only to %s<name>", exchange, client, prefix)
	}
	return nil
}
