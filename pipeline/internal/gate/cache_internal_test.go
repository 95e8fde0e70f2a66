package gate

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestReadyCacheStaysWithinItsBytes: however many and however long the
// URLs remembered, the cache holds at most its bytes; expired entries
// leave at the next remember, not only when looked up again; a URL larger
// than the whole cache is not remembered.
func TestReadyCacheStaysWithinItsBytes(t *testing.T) {
	const maxBytes = 64 << 10
	c := newReadyCache(time.Minute, maxBytes)
	now := time.Now()
	long := strings.Repeat("x", 1900)
	for i := range 300 {
		c.remember(fmt.Sprintf("http://h/%d/%s", i, long), now)
		if _, bytes := c.size(); bytes > maxBytes {
			t.Fatalf("after %d URLs of 2 KB the cache holds %d bytes; its bound is %d", i+1, bytes, maxBytes)
		}
	}
	entries, _ := c.size()
	if entries < 25 || !c.ready(fmt.Sprintf("http://h/%d/%s", 299, long), now) || c.ready("http://h/0/"+long, now) {
		t.Errorf("%d entries; want the newest kept and the oldest forgotten", entries)
	}
	c.remember("http://h/fresh", now.Add(2*time.Minute))
	if entries, bytes := c.size(); entries != 1 || bytes != len("http://h/fresh")+entryOverhead {
		t.Errorf("a remember after the TTL left %d entries (%d bytes); want the expired ones gone", entries, bytes)
	}
	c.remember("http://h/"+strings.Repeat("y", maxBytes), now.Add(2*time.Minute))
	if entries, _ := c.size(); entries != 1 {
		t.Errorf("a URL larger than the cache was remembered (%d entries)", entries)
	}
}
