package connsource_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/connsource"
)

func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "creds.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCommandOutputs: a command may print a URL, a list, or JSON with an
// expiry; what it says on standard error is logged with every password
// hidden, the ones it printed on standard output among them.
func TestCommandOutputs(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	for _, c := range []struct {
		out     string
		urls    int
		expires bool
	}{
		{`echo amqp://u:secret-pw1@a:5672/`, 1, false},
		{`printf 'amqp://u:secret-pw1@a:5672/,amqp://u:secret-pw1@b:5672/\n'`, 2, false},
		{`echo '{"connection": "amqps://u:secret-pw1@a:5671/", "expires": "2030-01-01T00:00:00Z"}'`, 1, true},
		{`echo '{"connection": ["amqp://u:secret-pw1@a/", "amqp://u:secret-pw1@b/"]}'`, 2, false},
	} {
		cmd := &connsource.Command{Argv: []string{script(t, "echo 'claiming for u:secret-pw1 at amqp://u:secret-secret-pw1@a/' >&2\n"+c.out)}, Logger: logger}
		creds, err := cmd.Get(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", c.out, err)
		}
		if len(creds.Addresses) != c.urls || creds.Expires.IsZero() == c.expires {
			t.Errorf("%s: %d addresses, expires %v", c.out, len(creds.Addresses), creds.Expires)
		}
		for _, a := range creds.Addresses {
			if strings.Contains(a.Display, "secret-pw1") {
				t.Errorf("an address shows its password: %s", a.Display)
			}
		}
	}
	if strings.Contains(logs.String(), "secret-pw1") || !strings.Contains(logs.String(), "claiming for") {
		t.Errorf("the command's standard error, as logged: %s", logs.String())
	}
}

// TestCommandFailures: a command that fails, prints nothing usable or
// runs too long is an error that says so, quoting its last words without
// a password.
func TestCommandFailures(t *testing.T) {
	for body, want := range map[string]string{
		"echo 'no token for amqp://u:hunter22@a/' >&2; exit 3": "exit status 3: no token for amqp://u:xxxxx@a/",
		"echo":                       "printed no connection string",
		"echo '{\"connection\": 3}'": "printed no connection string",
		"echo '{not json'":           "does not read as",
		"sleep 5":                    "did not finish within 200ms",
	} {
		cmd := &connsource.Command{Argv: []string{script(t, body)}, Timeout: 200 * time.Millisecond}
		_, err := cmd.Get(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter22") {
			t.Errorf("%s: %v; want an error saying %q", body, err, want)
		}
	}
}

// TestFileIsReadAtEveryGet: the file is read at every Get, Changed says
// when it holds something else than the last Get read, and a missing or
// empty file is an error that says what to do.
func TestFileIsReadAtEveryGet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connection")
	if err := os.WriteFile(path, []byte("amqp://u:one@a/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &connsource.File{Path: path}
	creds, err := f.Get(context.Background())
	if err != nil || len(creds.Addresses) != 1 || f.Changed() {
		t.Fatalf("%v %v changed %v", creds, err, f.Changed())
	}
	if err := os.WriteFile(path, []byte("amqp://u:two@a/\namqp://u:two@b/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !f.Changed() {
		t.Error("a rewritten file is not seen as changed")
	}
	if creds, err = f.Get(context.Background()); err != nil || len(creds.Addresses) != 2 || !strings.Contains(creds.Addresses[0].URL, "two") || f.Changed() {
		t.Errorf("after the rewrite: %d addresses, %v, changed %v", len(creds.Addresses), err, f.Changed())
	}
	os.WriteFile(path, []byte("  \n"), 0o600)
	if _, err := f.Get(context.Background()); err == nil || !strings.Contains(err.Error(), "holds no connection string") {
		t.Errorf("an empty file: %v", err)
	}
	os.Remove(path)
	if _, err := f.Get(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file: %v", err)
	}
}
