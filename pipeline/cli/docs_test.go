package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/reference"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

func docs(t *testing.T, args ...string) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Main(append([]string{"docs"}, args...), &out, &errOut); code != 0 {
		t.Fatalf("docs %v: exit %d: %s", args, code, errOut.String())
	}
	return out.Bytes()
}

// TestReferenceMarkdownIsCurrent keeps schemas/REFERENCE.md, which the
// README links, equal to what "docs" generates for the default pipeline.
func TestReferenceMarkdownIsCurrent(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "schemas", "REFERENCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	if got := docs(t); !bytes.Equal(got, want) {
		t.Error("schemas/REFERENCE.md is stale: regenerate it with go run ./cmd/pulsetranslator docs > schemas/REFERENCE.md")
	}
}

// TestReferenceJSON validates the default pipeline's reference against the
// exchanges-reference shape, and checks the routing key of every output of
// the corpus matches the words of exactly one entry.
func TestReferenceJSON(t *testing.T) {
	data := docs(t, "--format", "json")
	schema, err := jsonschema.Compile(filepath.Join("testdata", "exchanges-reference.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(doc); err != nil {
		t.Fatalf("the reference breaks the exchanges-reference schema: %v", err)
	}
	var ref reference.Reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	proc, err := offlineProcessor(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]int{}
	outputs := 0
	// The corpus, plus a unit test and a talos message written by hand
	// (the corpus has builds only).
	check := func(path string) error {
		for _, line := range translateFile(proc, path, "", "") {
			if line.RoutingKey == "" {
				continue
			}
			outputs++
			var matched []string
			for _, e := range ref.Entries {
				if _, ok := e.ParseKey(line.RoutingKey); ok {
					matched = append(matched, e.Name)
				}
			}
			if len(matched) != 1 {
				t.Errorf("%s: routing key %s matches entries %v, want exactly one", path, line.RoutingKey, matched)
				continue
			}
			used[matched[0]]++
		}
		return nil
	}
	if err := walkFiles(corpus, check); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"unittest.log_uploaded.json", "talos.log_uploaded.json"} {
		if err := check(filepath.Join("testdata", f)); err != nil {
			t.Fatal(err)
		}
	}
	if outputs != 233 || used["build"] != 231 || used["unittest"] != 1 || used["talos"] != 1 {
		t.Errorf("%d outputs matched %v; want 231 builds, 1 unit test, 1 talos", outputs, used)
	}
}

// TestDocsWritesSchemas: docs --schemas DIR writes every output schema
// under DIR by its name, each a JSON Schema with its $id.
func TestDocsWritesSchemas(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"docs", "--schemas", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "buildbot", "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil || !strings.HasSuffix(fmt.Sprint(doc["$id"]), "/schemas/buildbot/build.json") {
		t.Errorf("buildbot/build.json as written: %v, $id %v", err, doc["$id"])
	}
}
