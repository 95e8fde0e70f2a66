package gate

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// idleTimeout is how long an unused keep-alive connection is kept.
const idleTimeout = 30 * time.Second

// maxAnswerHead bounds what one answer's head may take: a host that
// sends endless header lines gets a failed check, not the memory.
const maxAnswerHead = 64 << 10

// errHeadTooLarge is the error of an answer whose head passes
// maxAnswerHead.
var errHeadTooLarge = fmt.Errorf("the answer's head is larger than %d KiB", maxAnswerHead>>10)

// limitedReader reads at most left bytes more, then fails.
type limitedReader struct {
	r    io.Reader
	left int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errHeadTooLarge
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= n
	return n, err
}

// conn is one HTTP/1.1 connection to an artifact host.
type conn struct {
	net.Conn
	key   string
	br    *bufio.Reader
	limit *limitedReader
	// used is set once the connection has carried an answer: an error
	// before the first byte of the next one means the host closed it
	// while it was idle, and the request is sent again on a new one.
	used bool
	// since is when it was put back idle.
	since time.Time
}

// send writes the request head of method for u. url.Parse refuses
// control characters, so neither the target nor the host can end a
// header line.
func (c *conn) send(method string, u *url.URL) error {
	target, host := u.RequestURI(), strings.TrimSuffix(u.Host, ":")
	if strings.ContainsAny(target, "\r\n") || strings.ContainsAny(host, "\r\n") {
		return errors.New("the URL holds a line break")
	}
	buf := make([]byte, 0, len(method)+len(target)+len(host)+len(userAgent)+40)
	buf = append(buf, method...)
	buf = append(buf, ' ')
	buf = append(buf, target...)
	buf = append(buf, " HTTP/1.1\r\nHost: "...)
	buf = append(buf, host...)
	buf = append(buf, "\r\nUser-Agent: "...)
	buf = append(buf, userAgent...)
	buf = append(buf, "\r\n\r\n"...)
	_, err := c.Write(buf)
	return err
}

// await waits for the first byte of an answer, and allows the answer
// maxAnswerHead bytes from there.
func (c *conn) await() error {
	c.limit.left = maxAnswerHead
	_, err := c.br.Peek(1)
	return err
}

// Requests the response parser is told about: a HEAD answer has no body.
var (
	headRequest = &http.Request{Method: http.MethodHead}
	getRequest  = &http.Request{Method: http.MethodGet}
)

// receive reads the head of the answer to a request of method, past any
// informational (1xx) answers. The body, if any, is left unread.
func (c *conn) receive(method string) (*http.Response, error) {
	req := headRequest
	if method == http.MethodGet {
		req = getRequest
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// reusable reports whether the connection can carry another request
// after resp, the answer to a request of method: a HEAD answer has no
// body, and the host did not ask to close.
func reusable(method string, resp *http.Response) bool {
	return method == http.MethodHead && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
}

// closedWhileIdle reports whether err, met before the first byte of an
// answer on a used connection, means the host had closed it.
func closedWhileIdle(c *conn, err error) bool {
	return c.used && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// pool keeps idle keep-alive connections by host (scheme, host and
// port), at most perHost to one host and maxIdle in all, each for
// idleTimeout; and dials new ones.
type pool struct {
	dialer  *net.Dialer
	tls     *tls.Config
	perHost int
	maxIdle int

	mu    sync.Mutex
	idle  map[string][]*conn
	count int
	swept time.Time
}

func newPool(dialer *net.Dialer, tlsConfig *tls.Config, perHost, maxIdle int) *pool {
	return &pool{dialer: dialer, tls: tlsConfig, perHost: perHost, maxIdle: maxIdle, idle: map[string][]*conn{}}
}

// hostKey names the host a connection for u goes to: the scheme and
// the address dialled.
func hostKey(u *url.URL) string {
	return u.Scheme + "://" + hostAddr(u)
}

// hostAddr is the address a connection for u dials.
func hostAddr(u *url.URL) string {
	return net.JoinHostPort(u.Hostname(), defaultPort(u))
}

// get returns the most recently used idle connection to key, or nil.
func (p *pool) get(key string, now time.Time) *conn {
	var found *conn
	var stale []*conn
	p.mu.Lock()
	list := p.idle[key]
	for len(list) > 0 && found == nil {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		p.count--
		if now.Sub(c.since) < idleTimeout {
			found = c
		} else {
			stale = append(stale, c)
		}
	}
	p.set(key, list)
	p.mu.Unlock()
	closeAll(stale)
	return found
}

// put keeps c idle for the next request to its host, or closes it when
// the host or the pool holds all it may. Now and then it closes the
// connections idle for longer than idleTimeout, of every host.
func (p *pool) put(c *conn, now time.Time) {
	c.used, c.since = true, now
	var drop []*conn
	p.mu.Lock()
	if now.Sub(p.swept) >= idleTimeout {
		p.swept = now
		for key, list := range p.idle {
			kept := list[:0]
			for _, idle := range list {
				if now.Sub(idle.since) < idleTimeout {
					kept = append(kept, idle)
				} else {
					drop = append(drop, idle)
					p.count--
				}
			}
			clear(list[len(kept):])
			p.set(key, kept)
		}
	}
	if len(p.idle[c.key]) >= p.perHost || p.count >= p.maxIdle {
		drop = append(drop, c)
	} else {
		p.idle[c.key] = append(p.idle[c.key], c)
		p.count++
	}
	p.mu.Unlock()
	closeAll(drop)
}

// set stores the idle list of key, forgetting the host when it is empty.
func (p *pool) set(key string, list []*conn) {
	if len(list) == 0 {
		delete(p.idle, key)
		return
	}
	p.idle[key] = list
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// dial opens a connection to u's host, whose hostKey is key, with TLS
// for https, within ctx.
func (p *pool) dial(ctx context.Context, u *url.URL, key string) (*conn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", hostAddr(u))
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		cfg := p.tls.Clone()
		cfg.ServerName = u.Hostname()
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	limit := &limitedReader{r: nc}
	return &conn{Conn: nc, key: key, br: bufio.NewReaderSize(limit, 4096), limit: limit}, nil
}
