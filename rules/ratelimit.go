package rules

import (
	"sync"
	"time"
)

// Rate limiter bounds. A key keeps at most DefaultRateCap timestamps: a
// constraint with max ≤ DefaultRateCap counts exactly, and a count that
// reaches the cap is already over any such max.
const (
	DefaultRateCap     = 1024
	DefaultRateMaxKeys = 100_000
	// DefaultRateIdle is how long a key may go without a Record before GC
	// removes it; it must be at least the longest rate window (24h).
	DefaultRateIdle = maxRateWindow
)

// RateLimiter is a sliding-window log per key (rate constraints of the
// policy). Memory is bounded: at most Cap timestamps per key and MaxKeys
// keys; keys idle longer than Idle are collected. It is safe for concurrent
// use and implements RateCounter.
type RateLimiter struct {
	// Cap, MaxKeys and Idle default to DefaultRateCap, DefaultRateMaxKeys
	// and DefaultRateIdle when zero.
	Cap     int
	MaxKeys int
	Idle    time.Duration

	mu     sync.Mutex
	logs   map[string]*rateLog
	lastGC time.Time
}

type rateLog struct {
	times []time.Time // ascending, len ≤ cap
	last  time.Time
}

// NewRateLimiter returns a RateLimiter with the default bounds.
func NewRateLimiter() *RateLimiter { return &RateLimiter{} }

func (l *RateLimiter) capacity() int {
	if l.Cap > 0 {
		return l.Cap
	}
	return DefaultRateCap
}

// Count returns how many Records under key fall in (now-window, now].
func (l *RateLimiter) Count(key string, window time.Duration, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	lg := l.logs[key]
	if lg == nil {
		return 0
	}
	from := now.Add(-window)
	n := 0
	for i := len(lg.times) - 1; i >= 0; i-- {
		t := lg.times[i]
		if !t.After(from) {
			break
		}
		if !t.After(now) {
			n++
		}
	}
	return n
}

// Record notes one action under key at now.
func (l *RateLimiter) Record(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logs == nil {
		l.logs = map[string]*rateLog{}
	}
	l.gcLocked(now)
	lg := l.logs[key]
	if lg == nil {
		maxKeys := l.MaxKeys
		if maxKeys <= 0 {
			maxKeys = DefaultRateMaxKeys
		}
		if len(l.logs) >= maxKeys {
			l.evictOldestLocked()
		}
		lg = &rateLog{}
		l.logs[key] = lg
	}
	// Keep the log sorted even if callers record slightly out of order.
	i := len(lg.times)
	for i > 0 && lg.times[i-1].After(now) {
		i--
	}
	lg.times = append(lg.times, time.Time{})
	copy(lg.times[i+1:], lg.times[i:])
	lg.times[i] = now
	if c := l.capacity(); len(lg.times) > c {
		lg.times = append(lg.times[:0], lg.times[len(lg.times)-c:]...)
	}
	if now.After(lg.last) {
		lg.last = now
	}
}

// Keys returns how many keys are held (for metrics and tests).
func (l *RateLimiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.logs)
}

func (l *RateLimiter) idle() time.Duration {
	if l.Idle > 0 {
		return l.Idle
	}
	return DefaultRateIdle
}

// gcLocked drops idle keys, at most once per tenth of the idle period.
func (l *RateLimiter) gcLocked(now time.Time) {
	idle := l.idle()
	if !l.lastGC.IsZero() && now.Sub(l.lastGC) < idle/10 {
		return
	}
	l.lastGC = now
	for k, lg := range l.logs {
		if now.Sub(lg.last) > idle {
			delete(l.logs, k)
		}
	}
}

func (l *RateLimiter) evictOldestLocked() {
	var oldest string
	var t time.Time
	first := true
	for k, lg := range l.logs {
		if first || lg.last.Before(t) {
			oldest, t, first = k, lg.last, false
		}
	}
	delete(l.logs, oldest)
}
