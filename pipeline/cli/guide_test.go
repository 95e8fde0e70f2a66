package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlocks are the Go snippets of a Markdown file, in order, their
// indentation (a list item's) removed.
func goBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?ms)^( *)```go\n(.*?)^ *```").FindAllStringSubmatch(string(data), -1) {
		indent := m[1]
		var lines []string
		for line := range strings.Lines(m[2]) {
			lines = append(lines, strings.TrimPrefix(line, indent))
		}
		blocks = append(blocks, strings.Join(lines, ""))
	}
	return blocks
}

// TestGuideSnippetsCompile builds the Go snippets of docs/plugins.md, as
// a plugin author would paste them, in a module of their own next to the
// example plugin's schemas and rules: the interface, the registration,
// the binary's main and the golden test. A snippet that drifts from the
// API fails here.
func TestGuideSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	blocks := goBlocks(t, "../../docs/plugins.md")
	if len(blocks) != 4 {
		t.Fatalf("docs/plugins.md has %d Go snippets; this test knows 4 (the interface, the registration, main, the golden test)", len(blocks))
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(repo, "translators", "examples", "taskdone")
	dir := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		write(to, string(data))
	}
	// The example's module files, as a module named example.com, so that
	// the guide's import example.com/taskdone is this module's package.
	mod, err := os.ReadFile(filepath.Join(example, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	modText := strings.Replace(string(mod), "module example.com/taskdone", "module example.com", 1)
	modText = strings.Replace(modText, "=> ../../..", "=> "+repo, 1)
	write("go.mod", modText)
	copyFile(filepath.Join(example, "go.sum"), "go.sum")
	copyFile(filepath.Join(example, "schemas", "taskdone", "task.json"), "taskdone/schemas/taskdone/task.json")
	copyFile(filepath.Join(example, "rules", "taskdone.yaml"), "taskdone/rules/taskdone.yaml")

	translatorImport := `"github.com/pulsetranslator/pulsetranslator/pipeline/translator"`
	write("taskdone/api.go", "package taskdone\n\nimport "+translatorImport+"\n\n"+blocks[0]+"\nvar _ Translator = translator.Func(nil)\n")
	write("taskdone/register.go", "package taskdone\n\nimport (\n\t\"embed\"\n\t\"io/fs\"\n\n\t"+translatorImport+"\n)\n\n"+blocks[1]+`
// DefaultConfig is the plugin's config, as step 4 of the guide says.
var DefaultConfig []byte

// New is the plugin's constructor, as the guide's step 3 names it.
func New(translator.Params) (translator.Translator, error) {
	return translator.Func(func(translator.Message) ([]translator.Output, error) { return nil, nil }), nil
}
`)
	write("cmd/taskdone-translator/main.go", blocks[2])
	write("taskdone/golden_test.go", "package taskdone_test\n\nimport (\n\t\"testing\"\n\n\t\"github.com/pulsetranslator/pulsetranslator/pipeline/plugintest\"\n\t"+translatorImport+"\n\t_ \"example.com/taskdone\"\n)\n\n"+blocks[3])

	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the guide's snippets do not build: %v\n%s", err, out)
	}
}
