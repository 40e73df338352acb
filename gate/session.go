package gate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/aarmproxy/aarm"
)

// Identity errors. Each is shown to the agent in the 407 body, so each says
// what to do about it.
var (
	ErrNoToken      = errors.New("no session token: send Proxy-Authorization Basic with the session token as password (HTTPS_PROXY=http://agent:TOKEN@host:port); get a token from `aarm session start` or run the agent under `aarm exec`")
	ErrBadToken     = errors.New("invalid session token: it is malformed or was not issued by this aarm install; start a new session with `aarm session start`")
	ErrTokenExpired = errors.New("session token expired: start a new session with `aarm session start`")
	ErrRevoked      = errors.New("session ended or revoked: start a new session with `aarm session start`")
	ErrNoSession    = errors.New("no such session")
)

// sessionPrefix is the gate's Badger key prefix for sessions.
const sessionPrefix = "session/"

// tokenPrefix marks aarm session tokens so they are recognisable (and never
// reported as leaked secrets when the agent sends them back to the proxy).
const tokenPrefix = "aarm1."

// SessionKeySize is the size of the HMAC key that signs session tokens.
const SessionKeySize = 32

// SessionSpec is what a caller asks for when starting a session.
type SessionSpec struct {
	User    string        `json:"user"`
	Agent   string        `json:"agent"`
	Service string        `json:"service,omitempty"`
	Intent  string        `json:"intent,omitempty"`
	Scope   []string      `json:"scope,omitempty"`
	TTL     aarm.Duration `json:"ttl,omitzero"`
}

// Session is one agent task: who runs it, what it was asked to do, and how
// long its token is valid.
type Session struct {
	ID        string    `json:"id"`
	Human     string    `json:"human"`
	Service   string    `json:"service,omitempty"`
	Agent     string    `json:"agent"`
	Scope     []string  `json:"scope,omitempty"`
	Intent    string    `json:"intent,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`
}

// Active reports whether the session can still act at now.
func (s *Session) Active(now time.Time) bool {
	return s.EndedAt.IsZero() && now.Before(s.ExpiresAt)
}

// Identity is the AARM identity of an action taken in this session.
func (s *Session) Identity() aarm.Identity {
	var chain []string
	if s.Human != "" {
		chain = append(chain, "human:"+s.Human)
	}
	if s.Service != "" {
		chain = append(chain, "service:"+s.Service)
	}
	if s.Agent != "" {
		chain = append(chain, "agent:"+s.Agent)
	}
	return aarm.Identity{
		Human: s.Human, Service: s.Service, Agent: s.Agent, Session: s.ID,
		Scope: slices.Clone(s.Scope), Delegation: chain, Verified: true, ExpiresAt: s.ExpiresAt,
	}
}

// Token is a session token. It implements slog.LogValuer so it never reaches
// a log in the clear.
type Token string

// LogValue redacts the token.
func (Token) LogValue() slog.Value { return slog.StringValue("[redacted token]") }

// SessionsOptions configures a session registry.
type SessionsOptions struct {
	// Key signs tokens (HMAC-SHA256); at least SessionKeySize bytes.
	Key        []byte
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	Now        func() time.Time
}

// Sessions is the registry of sessions, persisted in Badger under
// sessionPrefix, with every session cached in memory.
type Sessions struct {
	db   *badger.DB
	opts SessionsOptions

	mu    sync.RWMutex
	byID  map[string]*Session
	ended []func(*Session)
}

// onEnd registers f to be called after a session ends.
func (s *Sessions) onEnd(f func(*Session)) {
	s.mu.Lock()
	s.ended = append(s.ended, f)
	s.mu.Unlock()
}

// NewSessions opens the registry over db, loading persisted sessions.
func NewSessions(db *badger.DB, opts SessionsOptions) (*Sessions, error) {
	if len(opts.Key) < SessionKeySize {
		return nil, fmt.Errorf("session key: %d bytes, need at least %d", len(opts.Key), SessionKeySize)
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = 8 * time.Hour
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sessions{db: db, opts: opts, byID: map[string]*Session{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(sessionPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var sess Session
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &sess) }); err != nil {
				return fmt.Errorf("session %s: %w", it.Item().Key(), err)
			}
			s.byID[sess.ID] = &sess
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load sessions: %w", err)
	}
	return s, nil
}

// Start creates a session and returns it with its token.
func (s *Sessions) Start(spec SessionSpec) (*Session, Token, error) {
	if strings.TrimSpace(spec.Agent) == "" {
		return nil, "", errors.New("agent is required")
	}
	ttl := time.Duration(spec.TTL)
	if ttl <= 0 {
		ttl = s.opts.DefaultTTL
	}
	if ttl > s.opts.MaxTTL {
		return nil, "", fmt.Errorf("ttl %s exceeds identity.max_ttl %s", ttl, s.opts.MaxTTL)
	}
	now := s.opts.Now().UTC()
	sess := &Session{
		ID: newID("ses"), Human: spec.User, Service: spec.Service, Agent: spec.Agent,
		Scope: slices.Clone(spec.Scope), Intent: spec.Intent,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := s.put(sess); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	s.byID[sess.ID] = sess
	s.mu.Unlock()
	return clone(sess), s.sign(sess.ID, sess.ExpiresAt), nil
}

// End ends a session: its token stops working at once.
func (s *Sessions) End(id, reason string) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoSession, id)
	}
	if !cur.EndedAt.IsZero() {
		return clone(cur), nil
	}
	next := clone(cur)
	next.EndedAt = s.opts.Now().UTC()
	next.EndReason = reason
	if err := s.put(next); err != nil {
		return nil, err
	}
	s.byID[id] = next
	for _, f := range s.ended {
		go f(clone(next))
	}
	return clone(next), nil
}

// SetIntent records the session's original intent when it has none yet
// (captured later from LLM traffic or supplied through the API).
func (s *Sessions) SetIntent(id, intent string) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoSession, id)
	}
	next := clone(cur)
	next.Intent = intent
	if err := s.put(next); err != nil {
		return nil, err
	}
	s.byID[id] = next
	return clone(next), nil
}

// Get returns a copy of the session.
func (s *Sessions) Get(id string) (*Session, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sess, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	return clone(sess), true
}

// List returns every session, newest first.
func (s *Sessions) List() []*Session {
	s.mu.RLock()
	out := make([]*Session, 0, len(s.byID))
	for _, sess := range s.byID {
		out = append(out, clone(sess))
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Session) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Authenticate checks a token and returns the session's identity.
func (s *Sessions) Authenticate(token string) (aarm.Identity, error) {
	id, exp, err := s.verify(token)
	if err != nil {
		return aarm.Identity{}, err
	}
	now := s.opts.Now()
	if !now.Before(exp) {
		return aarm.Identity{}, ErrTokenExpired
	}
	sess, ok := s.Get(id)
	if !ok {
		return aarm.Identity{}, ErrBadToken
	}
	if !sess.EndedAt.IsZero() {
		return aarm.Identity{}, ErrRevoked
	}
	return sess.Identity(), nil
}

// Revalidate checks that an identity captured earlier may still act now: its
// session exists, has not ended and has not expired (AARM R6: expired claims
// are re-validated before a held action executes).
func (s *Sessions) Revalidate(id aarm.Identity) error {
	if !id.Verified {
		return nil
	}
	sess, ok := s.Get(id.Session)
	if !ok {
		return ErrRevoked
	}
	if !sess.EndedAt.IsZero() {
		return ErrRevoked
	}
	if !s.opts.Now().Before(sess.ExpiresAt) {
		return ErrTokenExpired
	}
	return nil
}

// IsToken reports whether v looks like an aarm session token.
func IsToken(v string) bool { return strings.HasPrefix(v, tokenPrefix) }

func (s *Sessions) put(sess *Session) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(sessionPrefix+sess.ID), b)
	})
}

// sign makes "aarm1.<b64url(expiry unix, 8 bytes BE || session id)>.<b64url(hmac)>".
func (s *Sessions) sign(id string, exp time.Time) Token {
	payload := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	payload = append(payload, id...)
	body := tokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return Token(body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body)))
}

func (s *Sessions) verify(token string) (id string, exp time.Time, err error) {
	if token == "" {
		return "", time.Time{}, ErrNoToken
	}
	if !strings.HasPrefix(token, tokenPrefix) {
		return "", time.Time{}, ErrBadToken
	}
	dot := strings.LastIndexByte(token, '.')
	if dot <= len(tokenPrefix) {
		return "", time.Time{}, ErrBadToken
	}
	body, sig := token[:dot], token[dot+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(body)) {
		return "", time.Time{}, ErrBadToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(tokenPrefix):])
	if err != nil || len(payload) < 9 {
		return "", time.Time{}, ErrBadToken
	}
	return string(payload[8:]), time.Unix(int64(binary.BigEndian.Uint64(payload[:8])), 0), nil
}

func (s *Sessions) mac(body string) []byte {
	m := hmac.New(sha256.New, s.opts.Key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

func clone(s *Session) *Session {
	c := *s
	c.Scope = slices.Clone(s.Scope)
	return &c
}

// newID returns "<prefix>_<26 chars>": 48 bits of milliseconds then 80 random
// bits, base32 (Crockford-like lower case), so ids sort by creation time.
func newID(prefix string) string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)
