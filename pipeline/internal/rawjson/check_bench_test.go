package rawjson

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCheck checks every corpus body once per iteration; MB/s is
// the grammar check's reading speed on real messages.
//
//	go test ./pipeline/rawjson -run '^$' -bench Check -benchmem -count 6
func BenchmarkCheck(b *testing.B) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot", "*", "*"))
	if len(paths) == 0 {
		b.Fatal("no corpus bodies")
	}
	var bodies [][]byte
	var size int64
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
		size += int64(len(body))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		for _, body := range bodies {
			if _, fault, at := Check(body); fault != OK {
				b.Fatalf("fault %d at %d", fault, at)
			}
		}
	}
}
