package runner_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/runner"
	"github.com/pulsetranslator/pulsetranslator/pipeline/translator"
)

// TestSchemasAreServed: run --http serves each output schema at
// /schemas/<name>, as the schemas' own files hold them, lists them at
// /schemas/, and says where to look for a name it does not hold.
func TestSchemasAreServed(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	rn, err := runner.New(cfg, translator.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHTTP(t, rn)
	resp, err := http.Get(srv.URL + "/schemas/buildbot/build.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/schema+json" {
		t.Fatalf("/schemas/buildbot/build.json: %d %s, %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	if id, _ := doc["$id"].(string); !strings.HasSuffix(id, "/schemas/buildbot/build.json") || doc["properties"] == nil {
		t.Errorf("the served schema: $id %q, properties %v", id, doc["properties"] != nil)
	}
	if code, body := get(t, srv.URL+"/schemas/"); code != 200 || !strings.Contains(body, `"buildbot/build.json"`) {
		t.Errorf("/schemas/: %d %s", code, body)
	}
	if code, body := get(t, srv.URL+"/schemas/buildbot/nope.json"); code != 404 || !strings.Contains(body, "/schemas/ lists them") {
		t.Errorf("/schemas/buildbot/nope.json: %d %s", code, body)
	}
}
