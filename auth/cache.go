package auth

import (
	"sync"
	"time"
)

// cache remembers tokens that verified, so a client that sends the same
// token on every call (a player's every switch) pays the signature check
// once: an RS256, ES256 or EdDSA verification costs 50-100 µs, a fifth
// of a switch, and a hit well under 1 µs. Only verified tokens enter, so
// made-up tokens cannot fill it; an entry is used only until the token's
// exp plus the leeway, checked on every hit, and each JWKS refetch empties
// the cache, so a key dropped from the set stops verifying at once.
type cache struct {
	mu  sync.RWMutex
	m   map[string]*Claims
	max int
}

// cacheMax bounds the entries (about 1 KB each with a typical token).
const cacheMax = 10_000

func (c *cache) get(token string, now time.Time) *Claims {
	c.mu.RLock()
	cl := c.m[token]
	c.mu.RUnlock()
	if cl == nil || !now.Before(cl.Until) {
		return nil
	}
	return cl
}

func (c *cache) reset() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *cache) put(token string, cl *Claims, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*Claims)
	}
	if len(c.m) >= c.max {
		// Drop the expired, and if that frees nothing, everything: a
		// dropped entry only costs one more verification.
		for k, v := range c.m {
			if !now.Before(v.Until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[token] = cl
}
