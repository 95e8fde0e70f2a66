package translator

import "fmt"

// Refusal says a message cannot be translated. The message is parked in the
// dead queue with Class and Reason in its headers.
type Refusal struct {
	// Class is a short, stable, machine-readable name, such as "bad_platform".
	Class string
	// Reason says what is wrong and, where possible, what to do about it.
	Reason string
}

// Error returns "Class: Reason".
func (r *Refusal) Error() string { return r.Class + ": " + r.Reason }

// Refuse returns a *Refusal with a formatted reason.
func Refuse(class, format string, args ...any) error {
	return &Refusal{Class: class, Reason: fmt.Sprintf(format, args...)}
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
