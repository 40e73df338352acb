package rules

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestRateLimiterSlidingWindow(t *testing.T) {
	t.Parallel()
	l := NewRateLimiter()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		l.Record("k", t0.Add(time.Duration(i)*10*time.Second))
	}
	tests := []struct {
		at     time.Duration
		window time.Duration
		want   int
	}{
		{40 * time.Second, time.Minute, 5},
		{60 * time.Second, time.Minute, 4}, // the record at 0s is exactly a window old: out
		{45 * time.Second, 20 * time.Second, 2},
		{10 * time.Minute, time.Minute, 0},
		{15 * time.Second, time.Minute, 2}, // records after now do not count
	}
	for _, tc := range tests {
		if got := l.Count("k", tc.window, t0.Add(tc.at)); got != tc.want {
			t.Errorf("Count at %s over %s: got %d, want %d", tc.at, tc.window, got, tc.want)
		}
	}
	if got := l.Count("other", time.Hour, t0); got != 0 {
		t.Errorf("unknown key: got %d, want 0", got)
	}
}

func TestRateLimiterBounds(t *testing.T) {
	t.Parallel()
	l := &RateLimiter{Cap: 3, MaxKeys: 2, Idle: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		l.Record("a", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if got := l.Count("a", time.Hour, t0.Add(time.Second)); got != 3 {
		t.Errorf("cap: got %d, want 3", got)
	}
	l.Record("b", t0.Add(time.Second))
	l.Record("c", t0.Add(2*time.Second)) // evicts the least recently used key, a
	if got := l.Keys(); got != 2 {
		t.Errorf("max keys: got %d keys, want 2", got)
	}
	if got := l.Count("a", time.Hour, t0.Add(3*time.Second)); got != 0 {
		t.Errorf("evicted key: got %d, want 0", got)
	}
	l.Record("d", t0.Add(time.Hour)) // b and c are idle: collected
	if got := l.Keys(); got != 1 {
		t.Errorf("after idle GC: got %d keys, want 1", got)
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := NewRateLimiter()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				l.Record(fmt.Sprintf("k%d", g%2), t0.Add(time.Duration(i)*time.Millisecond))
				l.Count("k0", time.Minute, t0.Add(time.Second))
			}
		})
	}
	wg.Wait()
	if got := l.Count("k0", time.Minute, t0.Add(time.Second)); got != 400 {
		t.Errorf("got %d, want 400", got)
	}
}
