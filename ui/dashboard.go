package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
)

//go:embed templates/*.html static/*
var assets embed.FS

// contentSecurityPolicy is sent with every dashboard response: scripts and
// styles only from the dashboard itself, no inline script, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// Page sizes.
const (
	blockedScan      = 1000 // DENY receipts read for the blocked page
	pageRows         = 200  // rows shown on list pages
	sessionTimeline  = 500  // receipts shown on a session page
	ledgerVerifyTime = 2 * time.Minute
)

// dashboard serves the review pages and the approvals/receipts API.
type dashboard struct {
	holds        HoldService
	receipts     ReceiptSource
	policy       PolicyStatus
	sessions     *gate.Sessions
	context      ContextSink
	adminToken   string
	accounts     map[string]string
	dummyHash    func() []byte
	keyPEMs      [][]byte
	keys         []receiptKey
	verifyLedger func(ctx context.Context) (*ledger.Report, error)
	tls          bool
	now          func() time.Time
	log          *slog.Logger

	web     *webSessions
	limiter *loginLimiter
	cop     *http.CrossOriginProtection
	pages   map[string]*pageTemplate
	static  http.Handler

	verifyRun  sync.Mutex // held while a full verification runs
	verifyMu   sync.Mutex // guards lastVerify
	lastVerify *ledgerVerification

	// closing ends the event streams when the server shuts down.
	closing   chan struct{}
	closeOnce sync.Once
}

// ledgerVerification is the last full ledger verification run from the
// dashboard.
type ledgerVerification struct {
	At     time.Time
	By     string
	Report *ledger.Report
	Err    string
}

func newDashboard(opts Options) (*dashboard, error) {
	d := &dashboard{
		holds: opts.Holds, receipts: opts.Receipts, policy: opts.Policy, sessions: opts.Sessions,
		context: opts.Context, adminToken: opts.AdminToken, keyPEMs: opts.ReceiptKeys,
		verifyLedger: opts.VerifyLedger, tls: opts.TLS, now: opts.Now, log: opts.Logger,
		accounts: map[string]string{}, web: newWebSessions(), limiter: newLoginLimiter(),
		cop: http.NewCrossOriginProtection(), closing: make(chan struct{}),
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := validateApprovers(opts.Approvers); err != nil {
		return nil, err
	}
	for _, a := range opts.Approvers {
		d.accounts[a.Name] = a.PasswordHash
	}
	d.dummyHash = newDummyHash(d.accounts)
	var err error
	if d.keys, err = loadReceiptKeys(opts.ReceiptKeys); err != nil {
		return nil, err
	}
	if opts.DashboardURL != "" {
		u, err := url.Parse(opts.DashboardURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("dashboard URL %q: want http(s)://host[:port]", opts.DashboardURL)
		}
		if err := d.cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("dashboard URL: %w", err)
		}
	}
	d.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.log.Warn("cross-origin dashboard request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "remote", clientIP(r))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	d.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	return d, nil
}

// pageHeaders adds the CSP and related headers to every dashboard response.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// mount adds the dashboard routes to the admin router.
func (d *dashboard) mount(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(pageHeaders, d.cop.Handler)
		r.Handle("/static/*", d.static)
		r.Get("/login", d.loginPage)
		r.Post("/login", d.loginSubmit)
		r.Group(func(r chi.Router) {
			r.Use(d.requireLogin)
			r.Get("/", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/holds", http.StatusSeeOther)
			})
			r.Get("/holds", d.holdsPage)
			r.Get("/holds/list", d.holdsFragment)
			r.Get("/holds/{id}", d.holdPage)
			r.Get("/events/holds", d.holdEvents)
			r.Get("/blocked", d.blockedPage)
			r.Get("/sessions", d.sessionsPage)
			r.Get("/sessions/{id}", d.sessionPage)
			r.Get("/receipts", d.receiptsPage)
			r.Get("/receipts/{id}", d.receiptPage)
			r.Get("/policy", d.policyPage)
			r.Group(func(r chi.Router) {
				r.Use(d.requireCSRF)
				r.Post("/logout", d.logout)
				r.Post("/holds/{id}/approve", d.decide(true))
				r.Post("/holds/{id}/deny", d.decide(false))
				r.Post("/holds/{id}/context", d.supplyContext)
				r.Post("/ledger/verify", d.runLedgerVerify)
			})
		})
	})
}

// --- login ---

type loginView struct {
	Next  string
	Token string
	Name  string
}

func (d *dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(d.sessionCookie()); err == nil {
		if _, ok := d.web.get(c.Value, d.now()); ok {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
	}
	d.renderLogin(w, r, http.StatusOK, "", "")
}

func (d *dashboard) renderLogin(w http.ResponseWriter, r *http.Request, status int, name, msg string) {
	tok := randomToken()
	d.setCookie(w, d.loginCookie(), tok, 600)
	d.render(w, r, status, "login", page{Title: "Sign in", Error: msg, Body: loginView{
		Next: safeNext(r.FormValue("next")), Token: tok, Name: name,
	}})
}

func (d *dashboard) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	// Login CSRF: a double-submit token, the cookie set with the form.
	c, err := r.Cookie(d.loginCookie())
	got := r.PostFormValue(csrfField)
	if err != nil || got == "" || !constantEqual(c.Value, got) {
		http.Error(w, "missing or invalid CSRF token: reload the sign-in page and try again", http.StatusForbidden)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	bucket := name
	if bucket == "" {
		bucket = AdminApprover // "" and "admin" are the same login
	}
	if !d.limiter.allow(clientIP(r), bucket, d.now()) {
		d.log.Warn("dashboard login rate limited", "user", name, "remote", clientIP(r))
		w.Header().Set("Retry-After", loginRetryAfter)
		d.renderLogin(w, r, http.StatusTooManyRequests, name, "Too many sign-in attempts. Wait a minute and try again.")
		return
	}
	who, ok := d.authenticate(name, r.PostFormValue("password"))
	if !ok {
		d.log.Warn("dashboard login failed", "user", name, "remote", clientIP(r))
		d.renderLogin(w, r, http.StatusUnauthorized, name, "Wrong name or password.")
		return
	}
	cookie, _ := d.web.create(who, d.now())
	d.setCookie(w, d.sessionCookie(), cookie, int(webSessionMax/time.Second))
	d.setCookie(w, d.loginCookie(), "", -1)
	d.log.Info("dashboard login", "approver", who.Name, "remote", clientIP(r))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (d *dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(d.sessionCookie()); err == nil {
		d.web.end(c.Value)
	}
	d.setCookie(w, d.sessionCookie(), "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// --- holds ---

func (d *dashboard) pendingCount() int {
	if d.holds == nil {
		return 0
	}
	return len(d.holds.Holds(gate.HoldPending))
}

type holdsView struct {
	Enabled bool
	State   string
	States  []gate.HoldState
	Rows    []holdRow
}

type holdRow struct {
	*gate.Hold
	Left time.Duration
}

func (d *dashboard) holdsView(r *http.Request) (holdsView, error) {
	v := holdsView{Enabled: d.holds != nil, States: holdStates, State: r.URL.Query().Get("state")}
	if v.State == "" {
		v.State = string(gate.HoldPending)
	}
	st, err := parseHoldState(v.State)
	if err != nil {
		return v, err
	}
	if d.holds == nil {
		return v, nil
	}
	now := d.now()
	for _, h := range d.holds.Holds(st) {
		v.Rows = append(v.Rows, holdRow{Hold: h, Left: timeLeft(h, now)})
		if len(v.Rows) >= pageRows {
			break
		}
	}
	return v, nil
}

func (d *dashboard) holdsPage(w http.ResponseWriter, r *http.Request) {
	v, err := d.holdsView(r)
	if err != nil {
		d.renderError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	d.render(w, r, http.StatusOK, "holds", page{Title: "Holds", Nav: "holds", Body: v})
}

// holdsFragment is the holds table alone, fetched by the page's script when
// the event stream says something changed.
func (d *dashboard) holdsFragment(w http.ResponseWriter, r *http.Request) {
	v, err := d.holdsView(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.renderFragment(w, r, "holds", "holdtable", page{Body: v})
}

func (d *dashboard) holdPage(w http.ResponseWriter, r *http.Request) {
	d.renderHold(w, r, http.StatusOK, chi.URLParam(r, "id"), "")
}

func (d *dashboard) renderHold(w http.ResponseWriter, r *http.Request, status int, id, errMsg string) {
	if d.holds == nil {
		d.renderError(w, r, http.StatusNotFound, "The hold queue is not enabled.")
		return
	}
	h, ok := d.holds.Hold(id)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "No such hold. It may have been resolved before a restart.")
		return
	}
	v := d.holdDetail(h)
	d.render(w, r, status, "hold", page{Title: "Hold " + h.Action.Tool + " " + h.Action.Operation, Nav: "holds", Error: errMsg, Flash: flashMessage(r.URL.Query().Get("done")), Body: v})
}

// flashMessage maps the fixed outcome codes of a redirect to text; nothing
// from the query string is reflected.
func flashMessage(code string) string {
	switch code {
	case "approved":
		return "Your approval was recorded."
	case "denied":
		return "The action was denied."
	case "already":
		return "This hold was already resolved; nothing was changed."
	case "same":
		return "You have already approved this hold; another approver must approve too."
	case "context":
		return "Context supplied; the deferred action was re-evaluated."
	}
	return ""
}

// decide handles the Approve and Deny buttons. A second click (or a second
// approver racing the first) finds the hold resolved and is redirected to
// it: a hold is approved once.
func (d *dashboard) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ws := webSessionFrom(r.Context())
		id := chi.URLParam(r, "id")
		if d.holds == nil {
			d.renderError(w, r, http.StatusNotFound, "The hold queue is not enabled.")
			return
		}
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		var err error
		if approve {
			_, err = d.holds.Approve(r.Context(), id, ws.who, reason)
		} else {
			_, err = d.holds.Deny(r.Context(), id, ws.who, reason)
		}
		d.log.Info("hold decision", "hold", id, "approver", ws.who.Name, "via", ws.who.Via, "approve", approve, "err", err)
		target := "/holds/" + url.PathEscape(id) + "?done="
		switch {
		case err == nil && approve:
			http.Redirect(w, r, target+"approved", http.StatusSeeOther)
		case err == nil:
			http.Redirect(w, r, target+"denied", http.StatusSeeOther)
		case errors.Is(err, gate.ErrHoldResolved):
			http.Redirect(w, r, target+"already", http.StatusSeeOther)
		case errors.Is(err, gate.ErrSameApprover):
			http.Redirect(w, r, target+"same", http.StatusSeeOther)
		case errors.Is(err, gate.ErrReasonRequired):
			d.renderHold(w, r, http.StatusBadRequest, id, "A reason is required to deny. Say why, so the agent's owner can see it.")
		case errors.Is(err, gate.ErrNotApprover):
			d.renderHold(w, r, http.StatusForbidden, id, "You may not decide this hold: "+err.Error())
		case errors.Is(err, gate.ErrNoHold):
			d.renderError(w, r, http.StatusNotFound, "No such hold.")
		default:
			d.renderHold(w, r, http.StatusInternalServerError, id, "The decision could not be recorded: "+err.Error())
		}
	}
}

// supplyContext is the dashboard side of the deferral service: facts typed
// as "name: value" lines are added to the session's context, and the gate
// re-evaluates the session's deferred actions with them.
func (d *dashboard) supplyContext(w http.ResponseWriter, r *http.Request) {
	ws := webSessionFrom(r.Context())
	id := chi.URLParam(r, "id")
	if d.holds == nil || d.context == nil {
		d.renderError(w, r, http.StatusNotImplemented, "Supplying context is not enabled.")
		return
	}
	h, ok := d.holds.Hold(id)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "No such hold.")
		return
	}
	facts, err := parseFacts(r.PostFormValue("facts"))
	if err != nil {
		d.renderHold(w, r, http.StatusBadRequest, id, err.Error())
		return
	}
	in := gate.ContextInput{Facts: facts, Source: ws.who.Name}
	if err := d.context.AddContext(h.Action.Identity.Session, in); err != nil {
		d.renderHold(w, r, http.StatusBadRequest, id, "The context was not accepted: "+err.Error())
		return
	}
	d.log.Info("context supplied from the dashboard", "hold", id, "session", h.Action.Identity.Session, "approver", ws.who.Name, "facts", len(facts))
	http.Redirect(w, r, "/holds/"+url.PathEscape(id)+"?done=context", http.StatusSeeOther)
}

// parseFacts reads "name: value" (or "name = value") lines. A value that is
// a JSON literal (true, 42, null, "quoted", [..], {..}) is taken as that
// value, so a policy condition like {eq: true} sees a boolean; anything
// else is a string.
func parseFacts(s string) (map[string]any, error) {
	facts := map[string]any{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			k, v, ok = strings.Cut(line, "=")
		}
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: write facts as \"name: value\"", i+1)
		}
		v = strings.TrimSpace(v)
		var lit any
		if err := json.Unmarshal([]byte(v), &lit); err == nil {
			facts[k] = lit
		} else {
			facts[k] = v
		}
	}
	if len(facts) == 0 {
		return nil, errors.New("no facts given: write one \"name: value\" a line")
	}
	return facts, nil
}

// --- blocked, sessions, receipts, policy ---

type blockedView struct {
	Enabled                bool
	Session, Tool, Text    string
	Rows                   []*aarm.Receipt
	Scanned                int
	Truncated              bool
	ErrorText              string
	SessionFilterAvailable bool
}

func (d *dashboard) blockedPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := blockedView{Enabled: d.receipts != nil, Session: strings.TrimSpace(q.Get("session")), Tool: strings.TrimSpace(q.Get("tool")), Text: strings.TrimSpace(q.Get("q"))}
	if d.receipts != nil {
		rs, err := d.receipts.List(ledger.Query{Verdict: aarm.Deny.String(), Session: v.Session, Reverse: true, Limit: blockedScan})
		if err != nil {
			v.ErrorText = err.Error()
		}
		v.Scanned = len(rs)
		text := strings.ToLower(v.Text)
		for _, rc := range rs {
			if v.Tool != "" && !strings.EqualFold(rc.Action.Tool, v.Tool) {
				continue
			}
			if text != "" && !receiptMentions(rc, text) {
				continue
			}
			if len(v.Rows) >= pageRows {
				v.Truncated = true
				break
			}
			v.Rows = append(v.Rows, rc)
		}
	}
	d.render(w, r, http.StatusOK, "blocked", page{Title: "Blocked", Nav: "blocked", Body: v})
}

// receiptMentions reports whether the lower-cased text appears in the
// receipt's reason, rule, tool, operation, target, host, path or identity.
func receiptMentions(rc *aarm.Receipt, text string) bool {
	fields := []string{rc.Action.Tool, rc.Action.Operation, rc.Action.Target, rc.Action.Destination.Host, rc.Action.Path,
		rc.Requester.Agent, rc.Requester.Human, rc.Requester.Session}
	if rc.Decision != nil {
		fields = append(fields, rc.Decision.Reason, rc.Decision.Rule)
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), text) {
			return true
		}
	}
	return false
}

type sessionsView struct {
	Enabled bool
	Rows    []*gate.Session
	Now     time.Time
}

func (d *dashboard) sessionsPage(w http.ResponseWriter, r *http.Request) {
	v := sessionsView{Enabled: d.sessions != nil, Now: d.now()}
	if d.sessions != nil {
		v.Rows = d.sessions.List()
		if len(v.Rows) > pageRows {
			v.Rows = v.Rows[:pageRows]
		}
	}
	d.render(w, r, http.StatusOK, "sessions", page{Title: "Sessions", Nav: "sessions", Body: v})
}

type sessionView struct {
	Session   *gate.Session
	Active    bool
	Timeline  []*aarm.Receipt
	Holds     []*gate.Hold
	ErrorText string
}

func (d *dashboard) sessionPage(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	sess, ok := d.sessions.Get(id)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "No such session.")
		return
	}
	v := sessionView{Session: sess, Active: sess.Active(d.now())}
	if d.receipts != nil {
		rs, err := d.receipts.List(ledger.Query{Session: id, Limit: sessionTimeline})
		if err != nil {
			v.ErrorText = err.Error()
		}
		v.Timeline = rs
	}
	if d.holds != nil {
		for _, h := range d.holds.Holds("") {
			if h.Action.Identity.Session == id {
				v.Holds = append(v.Holds, h)
			}
		}
	}
	d.render(w, r, http.StatusOK, "session", page{Title: "Session " + id, Nav: "sessions", Body: v})
}

type receiptsView struct {
	Enabled    bool
	Form       url.Values
	Rows       []*aarm.Receipt
	ErrorText  string
	Checkpoint *CheckpointResponse
	Verify     *ledgerVerification
	CanVerify  bool
	Verdicts   []string
	Kinds      []string
}

func (d *dashboard) receiptsPage(w http.ResponseWriter, r *http.Request) {
	v := receiptsView{Enabled: d.receipts != nil, Form: r.URL.Query(), CanVerify: d.verifyLedger != nil,
		Verdicts: []string{"ALLOW", "DENY", "MODIFY", "STEP_UP", "DEFER"},
		Kinds:    []string{string(aarm.KindDecision), string(aarm.KindOutcome), string(aarm.KindApproval), string(aarm.KindDeferral), string(aarm.KindResolution)}}
	d.verifyMu.Lock()
	v.Verify = d.lastVerify
	d.verifyMu.Unlock()
	status := http.StatusOK
	if d.receipts != nil {
		if cp, err := d.receipts.Checkpoint(); err == nil {
			c := checkpointResponse(cp)
			v.Checkpoint = &c
		}
		q, err := parseReceiptQuery(r.URL.Query(), d.now())
		if err != nil {
			v.ErrorText, status = err.Error(), http.StatusBadRequest
		} else if v.Rows, err = d.receipts.List(q); err != nil {
			v.ErrorText, status = err.Error(), http.StatusInternalServerError
		}
	}
	d.render(w, r, status, "receipts", page{Title: "Receipts", Nav: "receipts", Body: v})
}

type receiptView struct {
	Receipt *aarm.Receipt
	Checks  receiptChecks
}

func (d *dashboard) receiptPage(w http.ResponseWriter, r *http.Request) {
	if d.receipts == nil {
		d.renderError(w, r, http.StatusNotFound, "The receipt ledger is not enabled.")
		return
	}
	rc, err := d.receipts.Get(chi.URLParam(r, "id"))
	if err != nil {
		d.renderError(w, r, ledgerStatus(err), "Receipt not found.")
		return
	}
	d.render(w, r, http.StatusOK, "receipt", page{Title: "Receipt " + rc.ID, Nav: "receipts", Body: receiptView{Receipt: rc, Checks: d.verifyReceipt(rc)}})
}

// runLedgerVerify runs a full ledger verification (it reads every receipt,
// so it is a POST behind the CSRF check and one at a time).
func (d *dashboard) runLedgerVerify(w http.ResponseWriter, r *http.Request) {
	ws := webSessionFrom(r.Context())
	if d.verifyLedger == nil {
		d.renderError(w, r, http.StatusNotImplemented, "Ledger verification is not enabled.")
		return
	}
	if !d.verifyRun.TryLock() {
		d.renderError(w, r, http.StatusConflict, "A verification is already running.")
		return
	}
	defer d.verifyRun.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), ledgerVerifyTime)
	defer cancel()
	rep, err := d.verifyLedger(ctx)
	lv := &ledgerVerification{At: d.now(), By: ws.who.Name, Report: rep}
	if err != nil {
		lv.Err = err.Error()
	}
	d.verifyMu.Lock()
	d.lastVerify = lv
	d.verifyMu.Unlock()
	http.Redirect(w, r, "/receipts#ledger", http.StatusSeeOther)
}

type policyView struct {
	Enabled bool
	Status  any
	Policy  any
	Rules   []policyRuleView
}

type policyRuleView struct {
	ID, Description, Action, Class, Risk, Reason, Approvers, Timeout, TimeoutAction, Position, When string
}

func (d *dashboard) policyPage(w http.ResponseWriter, r *http.Request) {
	v := policyView{Enabled: d.policy != nil}
	if d.policy != nil {
		st := d.policy.Status()
		v.Status = st
		if p := d.policy.Current(); p != nil {
			v.Policy = p
			for _, ru := range p.Rules {
				prv := policyRuleView{
					ID: ru.ID, Description: ru.Description, Action: ru.Action.String(), Class: string(ru.Class),
					Risk: string(ru.RiskLevel), Reason: ru.Reason, Approvers: strings.Join(ru.Approvers, ", "), When: ru.When,
				}
				if ru.Timeout > 0 {
					prv.Timeout, prv.TimeoutAction = ru.Timeout.String(), ru.TimeoutAction.String()
				}
				if ru.Line > 0 {
					prv.Position = fmt.Sprintf("%s:%d", p.File, ru.Line)
				}
				v.Rules = append(v.Rules, prv)
			}
		}
	}
	d.render(w, r, http.StatusOK, "policy", page{Title: "Policy", Nav: "policy", Body: v})
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
