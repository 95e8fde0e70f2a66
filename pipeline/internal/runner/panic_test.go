package runner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/pulse"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// TestPanickingTranslatorIsParked checks that a translator panic parks the
// message with class "panic" and the process keeps consuming.
func TestPanickingTranslatorIsParked(t *testing.T) {
	conn := brokerOrSkip(t)
	w := newWorld(t, conn)
	reg := &translator.Registry{}
	_ = reg.Register(withBuildbotData(translator.Spec{Name: "buildbot", New: func(translator.Params) (translator.Translator, error) {
		return translator.Func(func(m translator.Message) ([]translator.Output, error) {
			if strings.Contains(string(m.Body), "panic") {
				panic("translator bug")
			}
			return nil, translator.Drop("not wanted")
		}), nil
	}}))
	rn := startWith(t, w.config(w.pulseUser()), reg)
	dead, err := w.admin.Consume(pulse.DeadQueue(w.client, "build"), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.publishRaw("build.a.1.log_uploaded", []byte(`{"panic": true}`))
	w.publishRaw("build.b.2.log_uploaded", []byte(`{"fine": true}`))
	parked := receive(t, dead, "the dead queue")
	if parked.Headers[pulse.HeaderClass] != pulse.ClassPanic || !strings.Contains(fmt.Sprint(parked.Headers[pulse.HeaderReason]), "translator bug") {
		t.Errorf("parked headers %v", parked.Headers)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rn.Stats("build").Dropped.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := rn.Stats("build").Dropped.Load(); got != 1 {
		t.Errorf("the message after the panic was not handled: dropped = %d", got)
	}
}
