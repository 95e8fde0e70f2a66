package gate

import (
	"container/list"
	"sync"
	"time"
)

// entryOverhead is what one remembered URL costs beside its bytes: the
// map entry, the list element and the expiry, rounded up.
const entryOverhead = 128

// readyCache remembers URLs that answered ready, each for ttl, within
// maxBytes (a URL's length plus entryOverhead each). Every entry lives
// for the same ttl, so the oldest is the first to expire: entries are
// kept in the order they were remembered, and each remember drops the
// expired ones from the front, then the oldest until the cache fits.
// What it holds never passes maxBytes, whatever the URLs upstream sends.
type readyCache struct {
	ttl      time.Duration
	maxBytes int

	mu    sync.Mutex
	bytes int
	byURL map[string]*list.Element
	order list.List // of *readyEntry, oldest first
}

type readyEntry struct {
	url    string
	expiry time.Time
}

func newReadyCache(ttl time.Duration, maxBytes int) *readyCache {
	return &readyCache{ttl: ttl, maxBytes: maxBytes, byURL: map[string]*list.Element{}}
}

// ready reports whether url answered ready less than ttl ago.
func (c *readyCache) ready(url string, now time.Time) bool {
	if c.ttl < 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byURL[url]
	if !ok {
		return false
	}
	if now.After(el.Value.(*readyEntry).expiry) {
		c.remove(el)
		return false
	}
	return true
}

// remember notes that url answered ready at now.
func (c *readyCache) remember(url string, now time.Time) {
	size := len(url) + entryOverhead
	if c.ttl < 0 || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byURL[url]; ok {
		c.remove(el)
	}
	c.byURL[url] = c.order.PushBack(&readyEntry{url: url, expiry: now.Add(c.ttl)})
	c.bytes += size
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		if c.bytes <= c.maxBytes && !now.After(front.Value.(*readyEntry).expiry) {
			break
		}
		c.remove(front)
	}
}

// remove forgets one entry; c.mu is held.
func (c *readyCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*readyEntry)
	delete(c.byURL, e.url)
	c.bytes -= len(e.url) + entryOverhead
}

// size returns the entries and bytes the cache holds.
func (c *readyCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byURL), c.bytes
}
