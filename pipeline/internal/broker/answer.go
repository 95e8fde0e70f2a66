package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoAnswer is wrapped by the error of a broker call that did not
// return in time (see Answer).
var ErrNoAnswer = errors.New("the broker did not answer")

// Answer runs ask on a goroutine of its own and returns what it returns,
// or, once ctx ends first, an error wrapping ErrNoAnswer and ctx's cause.
// A call to a queue whose process does not answer (RabbitMQ can leave
// one so) never returns by itself, and must not hold its caller: ask then
// goes on in the background, until the broker answers or the connection
// closes.
func Answer[T any](ctx context.Context, ask func() (T, error)) (T, error) {
	type answer struct {
		v   T
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		v, err := ask()
		answered <- answer{v, err}
	}()
	select {
	case a := <-answered:
		return a.v, a.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w (%w)", ErrNoAnswer, context.Cause(ctx))
	}
}

// Within is Answer with a limit of its own.
func Within[T any](limit time.Duration, ask func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return Answer(ctx, ask)
}
