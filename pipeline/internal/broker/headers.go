package broker

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	amqp "github.com/rabbitmq/amqp091-go"
)

// OriginalPrefix renames an upstream header whose name means something to
// the broker or to the translator (CC, BCC, x-death, x-pulse-…), when a
// copy of the message carries it on: under its own name it would route
// the copy, or pass for something the translator wrote.
const OriginalPrefix = "x-original-"

// Limits of the upstream headers a copy of a message carries on (to a
// wait queue or to the dead queue). RabbitMQ's default frame_max is 128
// KiB and a header frame larger than that closes the whole connection, so
// what one message may carry stays far below it.
const (
	// MaxCarriedHeader is the largest encoded header carried on.
	MaxCarriedHeader = 4 << 10
	// MaxCarriedHeaders is the largest total of the headers carried on.
	MaxCarriedHeaders = 16 << 10
	// maxCarriedNames bounds how many names a cut list gives.
	maxCarriedNames = 32
)

// Carried is what CarryHeaders keeps of a delivery's headers.
type Carried struct {
	// Headers are the headers kept, reserved names prefixed with
	// OriginalPrefix.
	Headers amqp.Table
	// Cut names the headers left out for their size, with their sizes,
	// for example "x-original-CC (105012 bytes)"; empty when none was.
	Cut string
}

// CarryHeaders returns what a copy of a delivery may carry of its
// headers: each header as it came, renamed when its name is reserved,
// but none larger than MaxCarriedHeader and, smallest first, no more than
// MaxCarriedHeaders in all. The headers are data: the caller adds its own
// after them, so that no upstream header can stand for one of its own.
func CarryHeaders(upstream amqp.Table) Carried {
	type header struct {
		name  string
		value any
		size  int
	}
	headers := make([]header, 0, len(upstream))
	for name, value := range upstream {
		if pulse.Reserved(name) {
			name = OriginalPrefix + name
		}
		headers = append(headers, header{name, value, 1 + len(name) + boundedSize(value, MaxCarriedHeader+1)})
	}
	// Smallest first: a huge header leaves room for many small ones.
	sort.Slice(headers, func(i, j int) bool {
		if headers[i].size != headers[j].size {
			return headers[i].size < headers[j].size
		}
		return headers[i].name < headers[j].name
	})
	var c Carried
	var cut []string
	total := 0
	for _, h := range headers {
		if len(h.name) > 255 || h.size > MaxCarriedHeader || total+h.size > MaxCarriedHeaders {
			cut = append(cut, h.name)
			continue
		}
		if c.Headers == nil {
			c.Headers = make(amqp.Table, len(headers))
		}
		c.Headers[h.name] = h.value
		total += h.size
	}
	if len(cut) > 0 {
		sizes := make(map[string]int, len(headers))
		for _, h := range headers {
			sizes[h.name] = h.size
		}
		var b strings.Builder
		for i, name := range cut {
			if i == maxCarriedNames {
				b.WriteString(", and " + strconv.Itoa(len(cut)-i) + " more")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			if len(name) > 64 {
				name = name[:64] + "…"
			}
			b.WriteString(name + " (" + strconv.Itoa(sizes[name]) + " bytes)")
		}
		c.Cut = b.String()
	}
	return c
}

// fieldSize is the size of a table entry as AMQP encodes it: the name
// as a short string, then the typed value.
func fieldSize(name string, value any) int {
	return 1 + len(name) + valueSize(value)
}

// valueSize is the encoded size of an AMQP field value, type byte
// included; values amqp091-go cannot encode count as their type byte.
func valueSize(v any) int {
	switch v := v.(type) {
	case nil:
		return 1
	case bool, int8, uint8:
		return 2
	case int16, uint16:
		return 3
	case int32, uint32, float32:
		return 5
	case int, int64, uint64, float64, time.Time:
		return 9
	case amqp.Decimal:
		return 6
	case string:
		return 5 + len(v)
	case []byte:
		return 5 + len(v)
	case amqp.Table:
		n := 5
		for k, x := range v {
			n += fieldSize(k, x)
		}
		return n
	case []interface{}:
		n := 5
		for _, x := range v {
			n += valueSize(x)
		}
		return n
	}
	return 1
}

// TableSize is the encoded size of a header table.
func TableSize(t amqp.Table) int { return valueSize(t) }

// MaxUpstreamEntries bounds the entries of a delivery's header table
// that the translator reads at all: a table with more is handled as if it
// were empty (BoundUpstream), so that a table of 10,000 small entries
// (RabbitMQ bounds a table only by frame_max, 128 KiB by default) costs
// no more than a normal message. Nested tables and arrays count by their
// size: no header larger than MaxCarriedHeader is carried, and its size
// is counted only up to there.
const MaxUpstreamEntries = 128

// BoundUpstream returns the headers of a delivery from upstream as the
// translator reads them: h itself when it has at most MaxUpstreamEntries
// entries, and otherwise none, with a note of why for the copies the
// translator makes.
func BoundUpstream(h amqp.Table) (amqp.Table, string) {
	if len(h) <= MaxUpstreamEntries {
		return h, ""
	}
	return nil, strconv.Itoa(len(h)) + " upstream headers, more than " + strconv.Itoa(MaxUpstreamEntries) + ": none were read or carried"
}

// boundedSize is valueSize of v, counted only up to limit: a header
// larger than limit costs no more to size than one of limit bytes.
func boundedSize(v any, limit int) int {
	switch v := v.(type) {
	case amqp.Table:
		n := 5
		for k, x := range v {
			if n += 1 + len(k) + boundedSize(x, limit-n); n > limit {
				return n
			}
		}
		return n
	case []interface{}:
		n := 5
		for _, x := range v {
			if n += boundedSize(x, limit-n); n > limit {
				return n
			}
		}
		return n
	}
	return valueSize(v)
}
