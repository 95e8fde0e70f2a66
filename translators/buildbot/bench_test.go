package buildbot_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// corpusMessages reads every raw message of the corpus.
func corpusMessages(b testing.TB) []translator.Message {
	b.Helper()
	paths, _ := filepath.Glob(filepath.Join(corpus, "buildbot", "*", "*"))
	if len(paths) != 75 {
		b.Fatalf("found %d raw messages, want 75", len(paths))
	}
	msgs := make([]translator.Message, len(paths))
	for i, p := range paths {
		msgs[i] = readRaw(b, p)
	}
	return msgs
}

// BenchmarkTranslateCorpus/translate translates the corpus mix (builds, l10n and
// release repacks, refusals, a drop) on one goroutine; msgs/s is per core.
//
// BenchmarkTranslateCorpus/decode-baseline only decodes each body into an
// any with encoding/json, as the original's json.loads did: the bare floor
// to compare against in the same run.
//
//	go test ./translators/buildbot -run '^$' -bench TranslateCorpus -benchmem -cpu 1 -count 6
func BenchmarkTranslateCorpus(b *testing.B) {
	tr := newTranslator(b)
	msgs := corpusMessages(b)
	b.Run("translate", func(b *testing.B) {
		benchCorpus(b, msgs, func(m translator.Message) { _, _ = tr.Translate(m) })
	})
	b.Run("decode-baseline", func(b *testing.B) {
		benchCorpus(b, msgs, func(m translator.Message) {
			var v any
			_ = json.Unmarshal(m.Body, &v)
		})
	})
}

func benchCorpus(b *testing.B, msgs []translator.Message, fn func(translator.Message)) {
	var bytes int64
	for _, m := range msgs {
		bytes += int64(len(m.Body))
	}
	b.SetBytes(bytes / int64(len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fn(msgs[i%len(msgs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
