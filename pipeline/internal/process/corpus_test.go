package process_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// corpusFile reads a raw corpus message (a path under the buildbot
// corpus) and its routing key.
func corpusFile(t testing.TB, rel string) ([]byte, string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "..", "translators", "buildbot", "testdata", "corpus", "buildbot", rel))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Meta struct {
			RoutingKey string `json:"routing_key"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return body, m.Meta.RoutingKey
}
