package translator

import (
	"fmt"
	"strings"
)

// Refusal classes that every translator meets; a translator gives its
// own cases classes of their own, such as "bad_platform".
const (
	// ClassMalformed: the message is not of the shape the translator
	// reads (a member missing, a value of another type).
	ClassMalformed = "malformed"
	// ClassTooManyOutputs: the message would give more outputs than
	// Params.MaxOutputs. A translator that fans out by data refuses it
	// before it builds the outputs.
	ClassTooManyOutputs = "too_many_outputs"
)

// Refusal says a message cannot be translated. The message is parked in the
// dead queue with Class and Reason in its headers.
type Refusal struct {
	// Class is a short, stable, machine-readable name, such as "bad_platform".
	Class string
	// Reason says what is wrong and, where possible, what to do about it.
	Reason string
	// Err is the error behind the refusal, if any: what Unwrap returns,
	// so that errors.Is and errors.As see through a refusal.
	Err error
}

// Error returns "Class: Reason".
func (r *Refusal) Error() string { return r.Class + ": " + r.Reason }

// Unwrap returns the error behind the refusal, or nil.
func (r *Refusal) Unwrap() error { return r.Err }

// Refuse returns a *Refusal with a reason formatted as fmt.Errorf does:
// an error formatted with %w is kept behind it (Refusal.Err).
func Refuse(class, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	r := &Refusal{Class: class, Reason: err.Error()}
	if strings.Contains(format, "%w") {
		r.Err = err
	}
	return r
}

// Dropped says a message is deliberately not published (for example a
// duplicate notification, or an ignored platform).
type Dropped struct {
	// Class is a short, stable name of the kind of drop, such as
	// "ignored_platform": the label metrics count it by. Optional; drops
	// without one are counted as "unclassified".
	Class string
	// Reason says why in full, for logs.
	Reason string
}

// Error returns "dropped: Reason".
func (d *Dropped) Error() string { return "dropped: " + d.Reason }

// Drop returns a *Dropped with a formatted reason and no class.
func Drop(format string, args ...any) error {
	return &Dropped{Reason: fmt.Sprintf(format, args...)}
}

// DropClass returns a *Dropped with a class and a formatted reason.
func DropClass(class, format string, args ...any) error {
	return &Dropped{Class: class, Reason: fmt.Sprintf(format, args...)}
}
