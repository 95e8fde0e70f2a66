package process_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/process"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
	"github.com/pulsetranslator/pulsetranslator/rules"

	// The benchmark runs the buildbot plugin, registered by its init.
	_ "github.com/pulsetranslator/pulsetranslator/translators/buildbot"
)

// stageCorpus is the corpus mix decoded once, with each message's
// translator outputs, for the stage benchmarks.
type stageCorpus struct {
	msgs    []translator.Message
	outputs [][]translator.Output
	bytes   int64
}

func loadStageCorpus(b *testing.B, tr translator.Translator) *stageCorpus {
	b.Helper()
	paths, _ := filepath.Glob(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot", "*", "*"))
	c := &stageCorpus{}
	for _, p := range paths {
		rel, _ := filepath.Rel(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot"), p)
		body, key := corpusFile(b, rel)
		// As the runner does: the translator gets Decode's message, outline and all.
		msg, err := process.Decode("exchange/build/", key, nil, body, time.Now())
		if err != nil {
			b.Fatalf("%s: %v", rel, err)
		}
		outs, _ := tr.Translate(msg)
		c.msgs = append(c.msgs, msg)
		c.outputs = append(c.outputs, outs)
		c.bytes += int64(len(body))
	}
	if len(c.msgs) != 75 {
		b.Fatalf("%d corpus messages, want 75", len(c.msgs))
	}
	return c
}

// BenchmarkStages measures each in-process step on the corpus mix, per raw
// message (an l10n repack counts once, with all its outputs), and the
// whole path: decode, translate, rules, schema validation, envelope
// encoding. msgs/s is per core with -cpu 1.
//
//	go test ./pipeline -run '^$' -bench Stages -benchmem -cpu 1 -count 6
func BenchmarkStages(b *testing.B) {
	cfg, err := config.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	p := cfg.Pipelines[0]
	p.Rules = []string{"builtin:buildbot.yaml", "builtin:buildbot-wait.yaml"}
	shipped, err := process.Ship(translator.Default)
	if err != nil {
		b.Fatal(err)
	}
	proc, err := process.NewProcessor(p, translator.Default, shipped)
	if err != nil {
		b.Fatal(err)
	}
	spec, _ := translator.Default.Lookup("buildbot")
	tr, err := spec.New(translator.Params{Pipeline: "build", Tables: proc.Rules().Tables()})
	if err != nil {
		b.Fatal(err)
	}
	c := loadStageCorpus(b, tr)
	output := &p.Outputs[0]

	run := func(name string, fn func(i int)) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(c.bytes / int64(len(c.msgs)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				fn(i % len(c.msgs))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	run("decode", func(i int) {
		m := c.msgs[i]
		_, _ = process.Decode(m.Exchange, m.RoutingKey, nil, m.Body, m.Received)
	})
	run("translate", func(i int) { _, _ = tr.Translate(c.msgs[i]) })
	run("rules", func(i int) {
		for _, o := range c.outputs[i] {
			subj := rules.Subject{Payload: o.Payload, RoutingKey: o.RoutingKey, CC: slices.Clone(o.CC)}
			_, _ = proc.Rules().Apply(&subj)
		}
	})
	run("schema", func(i int) {
		for _, o := range c.outputs[i] {
			_ = shipped.Schemas.Validate(o.Schema, o.Payload)
		}
	})
	run("encode", func(i int) {
		for _, o := range c.outputs[i] {
			_, _ = process.Body(process.Routed{Output: output, RoutingKey: o.RoutingKey, Payload: o.Payload}, time.Now())
		}
	})
	// What encode would cost with encoding/json: the figure that keeps
	// envelope.go's encoder (which also checks every number).
	run("encode with encoding/json", func(i int) {
		for _, o := range c.outputs[i] {
			_, _ = json.Marshal(map[string]any{"payload": o.Payload, "_meta": map[string]any{
				"exchange": output.Exchange, "routing_key": o.RoutingKey, "serializer": "json", "sent": time.Now().UTC().Format(time.RFC3339Nano)}})
		}
	})
	// What decode would cost with encoding/json checking the body alone,
	// without the outline translators read members from: the figure that
	// keeps rawjson.
	run("decode with encoding/json", func(i int) {
		_ = json.Valid(c.msgs[i].Body)
	})
	run("all", func(i int) {
		m := c.msgs[i]
		in, err := process.Decode(m.Exchange, m.RoutingKey, nil, m.Body, m.Received)
		if err != nil {
			return
		}
		outcome, err := proc.Process(in)
		if err != nil {
			return
		}
		for _, r := range outcome.Published {
			_, _ = process.Body(r, m.Received)
		}
	})
}
