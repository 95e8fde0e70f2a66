package gate_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/gate"
	"github.com/pulsetranslator/pulsetranslator/pipeline/internal/urlpolicy"
)

// cannedServer answers every HTTP/1.1 request on its keep-alive
// connections with "200 OK" and no body, reading no more than the request
// head: a log host that costs next to nothing, so that a benchmark
// measures the checker.
func cannedServer(b *testing.B) string {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	return rawServer(b, func(conn net.Conn, r *bufio.Reader) {
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(bytes.TrimSpace(line)) == 0 {
				if _, err := conn.Write(answer); err != nil {
					return
				}
			}
		}
	})
}

// BenchmarkCheck is the cost of one artifact check of a URL never seen
// before (so never cached), against a host that answers at once.
func BenchmarkCheck(b *testing.B) {
	base := cannedServer(b)
	c := newChecker(b, gate.Config{Policy: urlpolicy.Policy{AllowPrivate: true}})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if r := c.Check(ctx, fmt.Sprintf("%s/logs/%p/%d.txt.gz", base, &i, i)); r.Outcome != gate.Ready {
				b.Fatalf("%s: %s", r.Outcome, r.Detail)
			}
		}
	})
}
