package server

import (
	"sync"
	"time"
)

// limiter is a token bucket per key: Rate requests a second, Burst at once.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time
	mu    sync.Mutex
	b     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiterMax bounds the buckets kept; idle ones are full anyway, so
// forgetting them changes nothing.
const limiterMax = 100_000

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, b: map[string]*bucket{}}
}

// allow takes a token for key, or says how long until one is there.
func (l *limiter) allow(key string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.b[key]
	if !ok {
		if len(l.b) >= limiterMax {
			for k, v := range l.b {
				if now.Sub(v.last).Seconds()*l.rate >= l.burst {
					delete(l.b, k)
				}
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.b[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 { // mutant:rate-limit-off
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}
