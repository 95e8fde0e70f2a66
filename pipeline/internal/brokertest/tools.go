package brokertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DebianTool finds command, which Debian's package pkg installs. With
// CI=true a missing one is installed with apt-get (aptFlags go before the
// package), or the test fails; elsewhere the test is skipped.
func DebianTool(t testing.TB, command, pkg string, aptFlags ...string) string {
	t.Helper()
	if path, err := exec.LookPath(command); err == nil {
		return path
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("no %s (apt-get install %s)", command, pkg)
	}
	out, err := aptInstall(pkg, aptFlags...)
	path, lookErr := exec.LookPath(command)
	if err != nil || lookErr != nil {
		t.Fatalf("CI=true and %s is missing; installing it failed: %v\n%s", command, err, out)
	}
	return path
}

// aptInstall installs Debian's package pkg (aptFlags go before it). Test
// binaries of several packages run at once and may install at once: a
// lock file of the suite's own takes them in turn, and apt waits for a
// dpkg lock that something else holds.
func aptInstall(pkg string, aptFlags ...string) ([]byte, error) {
	install := strings.Join(append(append([]string{"apt-get -o DPkg::Lock::Timeout=600 install -y -q"}, aptFlags...), pkg), " ")
	script := "apt-get -o DPkg::Lock::Timeout=600 update -q && DEBIAN_FRONTEND=noninteractive " + install
	lock := filepath.Join(os.TempDir(), "pulsetranslator-apt.lock")
	return exec.Command("flock", "-w", "900", lock, "sh", "-c", script).CombinedOutput()
}

// DebianPython returns Debian's python3 once it can import module, which
// Debian's package pkg installs (pyenv and virtualenv shims on PATH may
// not see Debian's modules). With CI=true a missing module is installed
// with apt-get, or the test fails; elsewhere the test is skipped.
func DebianPython(t testing.TB, module, pkg string) string {
	t.Helper()
	const python = "/usr/bin/python3"
	imports := func() bool { return exec.Command(python, "-c", "import "+module).Run() == nil }
	if imports() {
		return python
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("%s cannot import %s (apt-get install %s)", python, module, pkg)
	}
	out, err := aptInstall(pkg)
	if err != nil || !imports() {
		t.Fatalf("CI=true and %s cannot import %s; installing %s failed: %v\n%s", python, module, pkg, err, out)
	}
	return python
}

// NpmPackage installs the npm package spec (name@version) from the npm
// registry into a directory kept between runs, and returns its
// node_modules directory, for NODE_PATH. It needs node and npm (Debian's
// nodejs and npm). Where it cannot install, the test fails with CI=true
// and is skipped elsewhere.
func NpmPackage(t testing.TB, spec string) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and "+format, args...)
		}
		t.Skipf(format, args...)
	}
	for _, command := range []string{"node", "npm"} {
		if _, err := exec.LookPath(command); err != nil {
			missing("no %s (apt-get install nodejs npm)", command)
		}
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(spec, "@"), "@")
	if strings.HasPrefix(spec, "@") {
		name = "@" + name
	}
	dir := filepath.Join(os.TempDir(), "pulsetranslator-npm", strings.NewReplacer("/", "_", "@", "_").Replace(spec))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, name, "package.json")); err == nil {
		return modules
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	install := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error", spec)
	if out, err := install.CombinedOutput(); err != nil {
		missing("installing %s with npm failed: %v\n%s", spec, err, out)
	}
	return modules
}
