package gate

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/aarmproxy/aarm"
)

func openTestDB(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestSessions(t *testing.T, db *badger.DB, clock *fakeClock) *Sessions {
	t.Helper()
	s, err := NewSessions(db, SessionsOptions{Key: bytes.Repeat([]byte{7}, SessionKeySize), DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSessionTokenLifecycle(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	db := openTestDB(t)
	s := newTestSessions(t, db, clock)

	sess, tok, err := s.Start(SessionSpec{User: "alice", Agent: "triage-bot", Service: "ci", Intent: "label issues", Scope: []string{"github:acme/web"}})
	if err != nil {
		t.Fatal(err)
	}
	if !IsToken(string(tok)) {
		t.Fatalf("got token %q, want prefix %q", tok, tokenPrefix)
	}
	id, err := s.Authenticate(string(tok))
	if err != nil {
		t.Fatalf("valid token: got %v", err)
	}
	if id.Human != "alice" || id.Agent != "triage-bot" || id.Session != sess.ID || !id.Verified || id.Scope[0] != "github:acme/web" {
		t.Errorf("got identity %+v", id)
	}
	if got, want := strings.Join(id.Delegation, ">"), "human:alice>service:ci>agent:triage-bot"; got != want {
		t.Errorf("delegation: got %q, want %q", got, want)
	}

	// Forgeries: flipped payload, flipped MAC, other key, garbage.
	other, err := NewSessions(openTestDB(t), SessionsOptions{Key: bytes.Repeat([]byte{8}, SessionKeySize), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, otherTok, _ := other.Start(SessionSpec{Agent: "x"})
	forged := []string{
		flip(string(tok), len(tokenPrefix)+12),
		flip(string(tok), len(tok)-3),
		string(otherTok),
		"aarm1.",
		"aarm1..",
		"not-a-token",
		strings.Replace(string(tok), ".", "", 1),
	}
	for _, f := range forged {
		if _, err := s.Authenticate(f); !errors.Is(err, ErrBadToken) {
			t.Errorf("Authenticate(%q): got %v, want ErrBadToken", f, err)
		}
	}
	if _, err := s.Authenticate(""); !errors.Is(err, ErrNoToken) {
		t.Errorf("empty token: got %v, want ErrNoToken", err)
	}

	// Expiry.
	clock.Add(time.Hour)
	if _, err := s.Authenticate(string(tok)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("after ttl: got %v, want ErrTokenExpired", err)
	}
	if err := s.Revalidate(id); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("revalidate after ttl: got %v, want ErrTokenExpired", err)
	}
}

func TestSessionRevocationPersists(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	db := openTestDB(t)
	s := newTestSessions(t, db, clock)
	sess, tok, err := s.Start(SessionSpec{User: "bob", Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.Authenticate(string(tok))
	if _, err := s.End(sess.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(string(tok)); !errors.Is(err, ErrRevoked) {
		t.Errorf("after end: got %v, want ErrRevoked", err)
	}
	if err := s.Revalidate(id); !errors.Is(err, ErrRevoked) {
		t.Errorf("revalidate after end: got %v, want ErrRevoked", err)
	}
	// A registry reopened over the same database remembers the end.
	s2 := newTestSessions(t, db, clock)
	if _, err := s2.Authenticate(string(tok)); !errors.Is(err, ErrRevoked) {
		t.Errorf("after reopen: got %v, want ErrRevoked", err)
	}
	got, ok := s2.Get(sess.ID)
	if !ok || got.EndReason != "done" || got.Human != "bob" {
		t.Errorf("after reopen: got %+v, %v", got, ok)
	}
	if _, err := s2.End("ses_nope", ""); !errors.Is(err, ErrNoSession) {
		t.Errorf("end unknown: got %v, want ErrNoSession", err)
	}
}

func TestSessionTTLBounds(t *testing.T) {
	t.Parallel()
	s := newTestSessions(t, openTestDB(t), &fakeClock{t: time.Now()})
	if _, _, err := s.Start(SessionSpec{Agent: "a", TTL: aarmDuration(3 * time.Hour)}); err == nil || !strings.Contains(err.Error(), "max_ttl") {
		t.Errorf("ttl over max: got %v, want an error naming max_ttl", err)
	}
	if _, _, err := s.Start(SessionSpec{User: "u"}); err == nil {
		t.Errorf("missing agent: got no error")
	}
	sess, _, err := s.Start(SessionSpec{Agent: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sess.ExpiresAt.Sub(sess.CreatedAt); got != time.Hour {
		t.Errorf("default ttl: got %s, want 1h", got)
	}
}

func TestIDsAreUniqueAndOrdered(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := newID("x")
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if id[:10] < prev[:min(10, len(prev))] {
			t.Fatalf("id %s sorts before %s", id, prev)
		}
		prev = id
	}
}

func aarmDuration(d time.Duration) aarm.Duration { return aarm.Duration(d) }

// flip changes the character at i to a different base64url character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}
