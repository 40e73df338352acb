package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/aarmproxy/aarm/gate"
)

// Dashboard login lifetimes and limits.
const (
	// webSessionIdle ends a dashboard login after this long without a request.
	webSessionIdle = 2 * time.Hour
	// webSessionMax ends a dashboard login this long after it began.
	webSessionMax = 12 * time.Hour
	// maxWebSessions bounds the logins kept in memory; the oldest go first.
	maxWebSessions = 1024
	// Login attempts: per client address a burst of 10 then one every 6s;
	// per user name a burst of 5 then one every 30s.
	loginIPBurst    = 10
	loginIPEvery    = 6 * time.Second
	loginUserBurst  = 5
	loginUserEvery  = 30 * time.Second
	loginRetryAfter = "30"
	// maxFormBody bounds dashboard form posts.
	maxFormBody = 64 << 10
	// csrfField is the hidden form field that carries the CSRF token.
	csrfField = "csrf"
)

// webSession is one dashboard login.
type webSession struct {
	who      gate.Approver
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// webSessions keeps dashboard logins in memory, keyed by the SHA-256 of the
// cookie value: a restart logs everyone out, which is the safe direction.
type webSessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*webSession
}

func newWebSessions() *webSessions { return &webSessions{byID: map[[32]byte]*webSession{}} }

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *webSessions) create(who gate.Approver, now time.Time) (cookie string, ws *webSession) {
	cookie = randomToken()
	ws = &webSession{who: who, csrf: randomToken(), created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxWebSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.byID {
			if at.IsZero() || v.lastSeen.Before(at) {
				oldest, at = k, v.lastSeen
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[sha256.Sum256([]byte(cookie))] = ws
	return cookie, ws
}

func (s *webSessions) get(cookie string, now time.Time) (*webSession, bool) {
	if cookie == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(cookie))
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.byID[k]
	if !ok {
		return nil, false
	}
	if now.Sub(ws.lastSeen) > webSessionIdle || now.Sub(ws.created) > webSessionMax {
		delete(s.byID, k)
		return nil, false
	}
	ws.lastSeen = now
	c := *ws
	return &c, true
}

func (s *webSessions) end(cookie string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(cookie)))
	s.mu.Unlock()
}

// loginLimiter rate-limits login attempts per client address and per user
// name, so neither one address nor many addresses can guess a password fast.
type loginLimiter struct {
	byIP   *lru.Cache[string, *rate.Limiter]
	byUser *lru.Cache[string, *rate.Limiter]
	mu     sync.Mutex
}

func newLoginLimiter() *loginLimiter {
	ip, _ := lru.New[string, *rate.Limiter](8192)
	user, _ := lru.New[string, *rate.Limiter](8192)
	return &loginLimiter{byIP: ip, byUser: user}
}

func (l *loginLimiter) limiter(c *lru.Cache[string, *rate.Limiter], key string, every time.Duration, burst int) *rate.Limiter {
	if lim, ok := c.Get(key); ok {
		return lim
	}
	lim := rate.NewLimiter(rate.Every(every), burst)
	c.Add(key, lim)
	return lim
}

// allow takes one attempt from both buckets; either empty refuses.
func (l *loginLimiter) allow(ip, user string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ipOK := l.limiter(l.byIP, ip, loginIPEvery, loginIPBurst).AllowN(now, 1)
	userOK := l.limiter(l.byUser, strings.ToLower(user), loginUserEvery, loginUserBurst).AllowN(now, 1)
	return ipOK && userOK
}

// clientIP is the connection's address. Forwarding headers are ignored: the
// admin listener is local and a header is whatever the client says.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newDummyHash returns a function making (once) the hash compared against
// when a user name is unknown, at the highest cost of the configured
// accounts, so that a failed login takes as long whether or not the name
// exists.
func newDummyHash(accounts map[string]string) func() []byte {
	cost := bcrypt.MinCost
	for _, h := range accounts {
		if c, err := bcrypt.Cost([]byte(h)); err == nil && c > cost {
			cost = c
		}
	}
	return sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("aarm-no-such-user"), cost)
		return h
	})
}

// authenticate checks a login. An empty name or "admin" with the admin token
// is the admin (a single-user install); otherwise a configured approver.
func (d *dashboard) authenticate(name, password string) (gate.Approver, bool) {
	if name == "" || name == AdminApprover {
		ok := subtle.ConstantTimeCompare([]byte(password), []byte(d.adminToken)) == 1
		return gate.Approver{Name: AdminApprover, Via: "dashboard"}, ok
	}
	if len(password) > maxPasswordLen {
		return gate.Approver{}, false
	}
	hash, known := d.accounts[name]
	if !known {
		_ = bcrypt.CompareHashAndPassword(d.dummyHash(), []byte(password))
		return gate.Approver{}, false
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return gate.Approver{}, false
	}
	return gate.Approver{Name: name, Via: "dashboard"}, true
}

type ctxKey int

const sessionKey ctxKey = 0

func webSessionFrom(ctx context.Context) *webSession {
	ws, _ := ctx.Value(sessionKey).(*webSession)
	return ws
}

// sessionCookie is the login cookie's name: with TLS it takes the __Host-
// prefix, which browsers only accept Secure, host-only and for path /.
func (d *dashboard) sessionCookie() string {
	if d.tls {
		return "__Host-aarm_session"
	}
	return "aarm_session"
}

func (d *dashboard) loginCookie() string {
	if d.tls {
		return "__Host-aarm_login"
	}
	return "aarm_login"
}

func (d *dashboard) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: d.tls, SameSite: http.SameSiteStrictMode,
	})
}

// requireLogin lets through requests with a live dashboard login; pages
// redirect to /login, everything else gets 401.
func (d *dashboard) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(d.sessionCookie())
		var ws *webSession
		ok := false
		if err == nil {
			ws, ok = d.web.get(c.Value, d.now())
		}
		if !ok {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey, ws)))
	})
}

// requireCSRF checks the synchronizer token of the login on every state
// change, in constant time.
func (d *dashboard) requireCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws := webSessionFrom(r.Context())
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		got := r.PostFormValue(csrfField)
		if ws == nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ws.csrf)) != 1 {
			d.log.Warn("dashboard post without a valid CSRF token", "path", r.URL.Path, "remote", clientIP(r))
			http.Error(w, "missing or invalid CSRF token: reload the page and try again", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// safeNext keeps a post-login redirect on this site: a local absolute path,
// never "//host" or "/\host".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/holds"
	}
	return next
}

// constantEqual compares secrets in constant time.
func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
