// Package connsource reads the broker's connection string where it lives
// when it rotates: a file that is read again at every connect (a
// Kubernetes Secret mounted as a volume, which the kubelet updates in
// place), or a program run at every connect that prints it, with an
// expiry when the credentials have one (the pattern of git's credential
// helpers and of AWS credential_process; it covers taskcluster's
// claimNamespace). Nothing it returns or logs holds a password.
package connsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/broker"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/config"
)

// maxBytes bounds what a file or a command may give: a connection string
// list is a few hundred bytes.
const maxBytes = 64 << 10

// File is a file holding the connection string, or the URLs of a
// cluster's nodes separated by commas or newlines, read at every Get.
type File struct {
	// Path is the file.
	Path string

	mu   sync.Mutex
	last [sha256.Size]byte
	read bool
}

// Get reads the file.
func (f *File) Get(context.Context) (broker.Credentials, error) {
	data, err := readBounded(f.Path)
	if err != nil {
		return broker.Credentials{}, err
	}
	urls := config.ParseConnections(string(data))
	if len(urls) == 0 {
		return broker.Credentials{}, fmt.Errorf("connection file %s holds no connection string: write the AMQP URL (amqp://user:password@host:5672/vhost) into it", f.Path)
	}
	f.mu.Lock()
	f.last, f.read = sha256.Sum256(data), true
	f.mu.Unlock()
	return broker.Credentials{Addresses: broker.Addresses(urls)}, nil
}

// Changed reports whether the file's content differs from what the last
// Get read: the connection is then made again with it.
func (f *File) Changed() bool {
	data, err := readBounded(f.Path)
	if err != nil {
		return false // Get will say why, when it is called
	}
	sum := sha256.Sum256(data)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read && sum != f.last
}

func readBounded(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("connection file: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("connection file %s: %w", path, err)
	}
	if len(data) > maxBytes {
		return nil, fmt.Errorf("connection file %s is over %d bytes; it should hold only the connection string", path, maxBytes)
	}
	return data, nil
}

// Command is a program run at every Get that prints the connection
// string (or a list, as File holds), or JSON:
//
//	{"connection": "amqps://user:password@host/vhost", "expires": "2026-12-06T10:00:00Z"}
//
// where connection may also be a list, and expires, optional, is when the
// credentials stop working: the connection is made again before then.
// The program's standard error is logged, redacted; a program that fails
// or runs longer than Timeout is an error that quotes its last words.
type Command struct {
	// Argv is the program and its arguments.
	Argv []string
	// Timeout bounds one run. Default 30s.
	Timeout time.Duration
	// Logger logs the program's standard error. Optional.
	Logger *slog.Logger
}

// commandOutput is the JSON form of a command's output.
type commandOutput struct {
	Connection json.RawMessage `json:"connection"`
	Expires    time.Time       `json:"expires"`
}

// Get runs the program.
func (c *Command) Get(ctx context.Context) (broker.Credentials, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	// A program that outlives its timeout is killed with every process it
	// started, so that none holds its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr boundedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var creds broker.Credentials
	var parseErr error
	if err == nil {
		if stdout.overflow {
			parseErr = fmt.Errorf("connection command %s printed over %d bytes; it should print only the connection string", c.Argv[0], maxBytes)
		} else {
			creds, parseErr = parseCommandOutput(c.Argv[0], stdout.Bytes())
		}
	}
	said := redactWith(stderr.String(), creds)
	if text := strings.TrimSpace(said); text != "" && c.Logger != nil {
		c.Logger.Info("the connection command said", "command", c.Argv[0], "stderr", text)
	}
	if err != nil {
		why := err.Error()
		if ctx.Err() != nil {
			why = fmt.Sprintf("did not finish within %s", timeout)
		}
		if last := lastLine(said); last != "" {
			why += ": " + last
		}
		return broker.Credentials{}, fmt.Errorf("connection command %s: %s", c.Argv[0], why)
	}
	return creds, parseErr
}

// redactWith hides in s the password of every URL, and the passwords of
// creds wherever they appear.
func redactWith(s string, creds broker.Credentials) string {
	s = Redact(s)
	for _, a := range creds.Addresses {
		if u, err := url.Parse(a.URL); err == nil {
			if p, ok := u.User.Password(); ok && len(p) >= 4 {
				s = strings.ReplaceAll(s, p, "xxxxx")
			}
		}
	}
	return s
}

// parseCommandOutput reads a command's standard output.
func parseCommandOutput(name string, out []byte) (broker.Credentials, error) {
	text := strings.TrimSpace(string(out))
	var urls config.Connections
	var expires time.Time
	if strings.HasPrefix(text, "{") {
		var o commandOutput
		if err := json.Unmarshal([]byte(text), &o); err != nil {
			return broker.Credentials{}, fmt.Errorf("connection command %s printed JSON that does not read as {\"connection\": ..., \"expires\": ...}: %s", name, Redact(err.Error()))
		}
		var one string
		var list []string
		switch {
		case json.Unmarshal(o.Connection, &one) == nil:
			urls = config.ParseConnections(one)
		case json.Unmarshal(o.Connection, &list) == nil:
			for _, u := range list {
				urls = append(urls, config.ParseConnections(u)...)
			}
		}
		expires = o.Expires
	} else {
		urls = config.ParseConnections(text)
	}
	if len(urls) == 0 {
		return broker.Credentials{}, fmt.Errorf("connection command %s printed no connection string: it should print an AMQP URL, or JSON {\"connection\": \"amqps://...\", \"expires\": \"<RFC 3339 time>\"}", name)
	}
	for _, u := range urls {
		if _, err := url.Parse(u); err != nil {
			return broker.Credentials{}, fmt.Errorf("connection command %s printed a connection string that is not a URL", name)
		}
	}
	return broker.Credentials{Addresses: broker.Addresses(urls), Expires: expires}, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// boundedBuffer keeps the first maxBytes written to it.
type boundedBuffer struct {
	bytes.Buffer
	overflow bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxBytes - b.Len(); len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// userinfo matches the user information of a URL: scheme://user:password@.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s]*):[^@\s]*@`)

// Redact hides the password of every URL in s.
func Redact(s string) string {
	return userinfo.ReplaceAllString(s, "${1}:xxxxx@")
}
