// Package ui serves the admin listener: the JSON API under /api/v1 and the
// review dashboard. It is never reachable through the proxy (the proxy
// refuses the admin address), and every state change needs the admin token or
// a dashboard login.
package ui

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
)

// maxAPIBody bounds JSON request bodies on the admin API.
const maxAPIBody = 1 << 20

// Options configures the admin server.
type Options struct {
	// AdminToken authenticates API clients (Authorization: Bearer TOKEN).
	AdminToken string
	Sessions   *gate.Sessions
	// Context receives facts and intents posted to a session; may be nil.
	Context ContextSink
	// ProxyURL is the proxy address agents use, for the env lines returned
	// with a new session ("http://127.0.0.1:8080").
	ProxyURL string
	// CAFile is the CA certificate path agents must trust.
	CAFile string
	// NoProxy lists hosts agents must reach directly (the admin address).
	NoProxy []string
	// Metrics serves /metrics when set.
	Metrics http.Handler
	Logger  *slog.Logger

	// The review dashboard and the approvals/receipts API (review.go,
	// dashboard.go). Each source is optional; the pages of a missing one
	// say so.
	Holds    HoldService
	Receipts ReceiptSource
	Policy   PolicyStatus
	// Approvers are the dashboard logins besides the admin token.
	Approvers []ApproverAccount
	// ReceiptKeys are the PKIX PEM public keys receipts and checkpoints
	// are verified with on the receipts pages (signing-pub.pem).
	ReceiptKeys [][]byte
	// VerifyLedger, when set, runs a full offline verification of the
	// ledger for the receipts page (ledger.Verify over the store).
	VerifyLedger func(ctx context.Context) (*ledger.Report, error)
	// DashboardURL is the dashboard's external base URL, for links in
	// notifications and as a trusted origin.
	DashboardURL string
	// TLS marks the admin listener as HTTPS: cookies are then Secure.
	TLS bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ContextSink takes context supplied for a session through the API.
type ContextSink interface {
	AddContext(sessionID string, in gate.ContextInput) error
}

// ContextViewer shows a session's accumulated context (implemented by the
// gate); GET /api/v1/sessions/{id} includes it when available.
type ContextViewer interface {
	ContextView(sessionID string) (*gate.View, bool)
}

// Exporter writes a JSONL receipt bundle (ledger.Ledger.Export).
type Exporter interface {
	Export(ctx context.Context, w io.Writer, q ledger.Query) error
}

// Server is the admin HTTP handler.
type Server struct {
	opts   Options
	router chi.Router
	dash   *dashboard
}

// New builds the admin handler.
func New(opts Options) (*Server, error) {
	if len(opts.AdminToken) < 16 {
		return nil, errors.New("admin token missing or too short")
	}
	if opts.Sessions == nil {
		return nil, errors.New("sessions registry is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts}
	dash, err := newDashboard(opts)
	if err != nil {
		return nil, err
	}
	s.dash = dash
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(securityHeaders)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if opts.Metrics != nil {
		r.With(s.requireAdmin).Handle("/metrics", opts.Metrics)
	}
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.requireAdmin)
		r.Post("/sessions", s.startSession)
		r.Get("/sessions", s.listSessions)
		r.Get("/sessions/{id}", s.getSession)
		r.Post("/sessions/{id}/end", s.endSession)
		r.Post("/sessions/{id}/context", s.addContext)
		r.Get("/receipts/export", s.exportReceipts)
		s.dash.mountAPI(r)
	})
	s.dash.mount(r)
	s.router = r
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Router exposes the router so the dashboard can mount its routes.
func (s *Server) Router() chi.Router { return s.router }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// requireAdmin checks the bearer admin token in constant time.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if ok && gate.IsToken(strings.TrimSpace(tok)) {
			// The agent's own credential never opens the admin API: an
			// agent cannot approve its own action (DESIGN.md §7.2).
			writeError(w, http.StatusForbidden, "a session token cannot be used on the admin API: send the admin token")
			return
		}
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.opts.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="aarm admin"`)
			writeError(w, http.StatusUnauthorized, "admin token required: send Authorization: Bearer <contents of DATA_DIR/admin-token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SessionResponse is the answer to POST /api/v1/sessions.
type SessionResponse struct {
	*gate.Session
	Token string            `json:"token"`
	Env   map[string]string `json:"env"`
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) {
	var spec gate.SessionSpec
	if err := decodeJSON(r, &spec); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sess, tok, err := s.opts.Sessions.Start(spec)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.opts.Logger.Info("session started", "session", sess.ID, "human", sess.Human, "agent", sess.Agent, "expires", sess.ExpiresAt)
	writeJSON(w, http.StatusCreated, SessionResponse{Session: sess, Token: string(tok), Env: AgentEnv(s.opts.ProxyURL, sess.Agent, string(tok), s.opts.CAFile, s.opts.NoProxy)})
}

func (s *Server) listSessions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sessions": s.opts.Sessions.List()})
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.opts.Sessions.Get(chi.URLParam(r, "id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no such session")
		return
	}
	out := struct {
		*gate.Session
		Context *gate.View `json:"context,omitempty"`
	}{Session: sess}
	if cv, ok := s.opts.Context.(ContextViewer); ok {
		out.Context, _ = cv.ContextView(sess.ID)
	}
	writeJSON(w, http.StatusOK, out)
}

// exportReceipts streams a JSONL bundle (GET /api/v1/receipts/export
// ?since=RFC3339&session=ID): the receipts, then a trailer with the signed
// checkpoint and inclusion proofs, verifiable offline with `aarm verify
// --bundle FILE --pubkey signing-pub.pem`.
func (s *Server) exportReceipts(w http.ResponseWriter, r *http.Request) {
	exp, ok := s.opts.Receipts.(Exporter)
	if !ok {
		writeError(w, http.StatusNotImplemented, "the receipt ledger is not enabled")
		return
	}
	q := ledger.Query{Session: r.URL.Query().Get("session")}
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since: want an RFC 3339 time such as 2026-01-02T15:04:05Z")
			return
		}
		q.Since = t
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	if err := exp.Export(r.Context(), w, q); err != nil {
		s.opts.Logger.Error("receipt export failed", "err", err)
	}
}

func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &body); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if body.Reason == "" {
		body.Reason = "ended by admin"
	}
	sess, err := s.opts.Sessions.End(chi.URLParam(r, "id"), body.Reason)
	if errors.Is(err, gate.ErrNoSession) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) addContext(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, ok := s.opts.Sessions.Get(id); !ok {
		writeError(w, http.StatusNotFound, "no such session")
		return
	}
	var in gate.ContextInput
	if err := decodeJSON(r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.opts.Context == nil {
		if in.Intent != "" && len(in.Facts) == 0 {
			if _, err := s.opts.Sessions.SetIntent(id, in.Intent); err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		}
		writeError(w, http.StatusNotImplemented, "session context is not enabled in this build")
		return
	}
	if err := s.opts.Context.AddContext(id, in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// AgentEnv returns the environment an agent process needs to use the proxy
// with a session token and trust the local CA. Every common HTTP stack reads
// one of these variables.
func AgentEnv(proxyURL, agent, token, caFile string, noProxy []string) map[string]string {
	u := proxyURL
	if i := strings.Index(u, "://"); i >= 0 && token != "" {
		user := agent
		if user == "" {
			user = "agent"
		}
		u = u[:i+3] + urlUserinfo(user) + ":" + token + "@" + u[i+3:]
	}
	np := strings.Join(noProxy, ",")
	env := map[string]string{
		"HTTPS_PROXY": u, "HTTP_PROXY": u, "https_proxy": u, "http_proxy": u,
		"NO_PROXY": np, "no_proxy": np,
		"NODE_USE_ENV_PROXY": "1",
	}
	if caFile != "" {
		for _, k := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"} {
			env[k] = caFile
		}
	}
	return env
}

// urlUserinfo escapes a user name for the userinfo part of a proxy URL.
func urlUserinfo(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
