package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
)

// TestWithin: an answer within the limit is returned as it is, error
// included; a call that does not return is given up at the limit, with
// ErrNoAnswer and the reason, and goes on in the background.
func TestWithin(t *testing.T) {
	boom := errors.New("boom")
	if v, err := broker.Within(time.Second, func() (int, error) { return 7, boom }); v != 7 || err != boom {
		t.Errorf("Within of an answer: %d, %v; want 7, boom", v, err)
	}
	release := make(chan struct{})
	defer close(release)
	began := time.Now()
	v, err := broker.Within(50*time.Millisecond, func() (int, error) { <-release; return 7, nil })
	if v != 0 || !errors.Is(err, broker.ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Within of a call that does not return: %d, %v; want 0 and ErrNoAnswer with the deadline", v, err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("gave up after %s; want about 50ms", took)
	}
}
