package buildbot_test

import (
	"path/filepath"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// corpusMessages reads every raw message of the corpus.
func corpusMessages(b *testing.B) []translator.Message {
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

// BenchmarkTranslateCorpus translates the corpus mix (builds, l10n and
// release repacks, refusals, a drop) on one goroutine; msgs/s is per core.
//
//	go test ./translators/buildbot -run '^$' -bench TranslateCorpus -benchmem -cpu 1 -count 6
func BenchmarkTranslateCorpus(b *testing.B) {
	tr := newTranslator(b)
	msgs := corpusMessages(b)
	var bytes int64
	for _, m := range msgs {
		bytes += int64(len(m.Body))
	}
	b.SetBytes(bytes / int64(len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = tr.Translate(msgs[i%len(msgs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
