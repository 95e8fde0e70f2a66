package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the module's root, from this package's folder.
const repoRoot = "../.."

// TestPublicSurface: what other modules may import is the plugin API,
// its test kit, this package, the in-tree plugins and the rule engine and
// schemas they ship; everything else is under an internal folder.
func TestPublicSurface(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Name}}", "./...")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var public []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, name, _ := strings.Cut(line, " ")
		if name != "main" && !strings.Contains(path+"/", "/internal/") {
			public = append(public, path)
		}
	}
	if len(public) > 8 || len(public) < 5 {
		t.Errorf("%d packages other modules may import; want at most 8:\n%s", len(public), strings.Join(public, "\n"))
	}
}

// TestNoRuntimeKnobs: no package but a binary's main sets the runtime's
// process-wide knobs; a deployment sets them, in the environment.
func TestNoRuntimeKnobs(t *testing.T) {
	knobs := map[string]bool{"runtime.GOMAXPROCS": true, "debug.SetGCPercent": true, "debug.SetMemoryLimit": true}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "examples") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil || f.Name.Name == "main" {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && knobs[x.Name+"."+sel.Sel.Name] {
					t.Errorf("%s sets %s.%s", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
