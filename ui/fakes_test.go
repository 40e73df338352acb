package ui

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
	"github.com/aarmproxy/aarm/rules"
)

// The real components satisfy the interfaces the dashboard declares.
var (
	_ HoldService   = (*gate.Gate)(nil)
	_ ReceiptSource = (*ledger.Ledger)(nil)
	_ PolicyStatus  = (*rules.PolicyStore)(nil)
	_ ContextSink   = (*gate.Gate)(nil)
)

// fakeHolds is an in-memory hold queue with the gate's decision rules:
// resolved holds refuse further decisions, deny needs a reason, a rule's
// approvers restrict who decides, Required approvals release.
type fakeHolds struct {
	mu    sync.Mutex
	holds map[string]*gate.Hold
	order []string
	subs  []chan gate.HoldEvent
	calls int
}

func newFakeHolds(hs ...*gate.Hold) *fakeHolds {
	f := &fakeHolds{holds: map[string]*gate.Hold{}}
	for _, h := range hs {
		f.add(h)
	}
	return f
}

func (f *fakeHolds) add(h *gate.Hold) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.State == "" {
		h.State = gate.HoldPending
	}
	if h.Required == 0 {
		h.Required = 1
	}
	f.holds[h.ID] = h
	f.order = append(f.order, h.ID)
	for _, s := range f.subs {
		s <- gate.HoldEvent{Hold: clone(h), Type: "created"}
	}
}

func clone(h *gate.Hold) *gate.Hold {
	c := *h
	c.Approvals = slices.Clone(h.Approvals)
	return &c
}

func (f *fakeHolds) Holds(state gate.HoldState) []*gate.Hold {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*gate.Hold
	for _, id := range f.order {
		if h := f.holds[id]; state == "" || h.State == state {
			out = append(out, clone(h))
		}
	}
	return out
}

func (f *fakeHolds) Hold(id string) (*gate.Hold, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.holds[id]
	if !ok {
		return nil, false
	}
	return clone(h), true
}

func (f *fakeHolds) decide(id string, who gate.Approver, reason string, approve bool) (*gate.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	h, ok := f.holds[id]
	if !ok {
		return nil, gate.ErrNoHold
	}
	if !approve && strings.TrimSpace(reason) == "" {
		return clone(h), gate.ErrReasonRequired
	}
	if h.State.Terminal() {
		return clone(h), gate.ErrHoldResolved
	}
	if who.Name == "" || who.Name == h.Action.Identity.Agent || gate.IsToken(who.Name) {
		return clone(h), gate.ErrNotApprover
	}
	if len(h.Decision.Approvers) > 0 && !slices.Contains(h.Decision.Approvers, who.Name) {
		return clone(h), fmt.Errorf("%w: needs one of %v", gate.ErrNotApprover, h.Decision.Approvers)
	}
	v := aarm.Deny
	if approve {
		v = aarm.Allow
		if slices.ContainsFunc(h.Approvals, func(a aarm.Approval) bool { return a.Approver == who.Name }) {
			return clone(h), gate.ErrSameApprover
		}
	}
	h.Approvals = append(h.Approvals, aarm.Approval{Approver: who.Name + "/" + who.Via, Decision: v, Reason: reason, Time: time.Now()})
	switch {
	case !approve:
		h.State, h.Resolution = gate.HoldDenied, "denied by "+who.Name+": "+reason
	case len(h.Approvals) >= h.Required:
		h.State, h.Resolution = gate.HoldApproved, "approved by "+who.Name
	}
	return clone(h), nil
}

func (f *fakeHolds) Approve(_ context.Context, id string, who gate.Approver, reason string) (*gate.Hold, error) {
	return f.decide(id, who, reason, true)
}

func (f *fakeHolds) Deny(_ context.Context, id string, who gate.Approver, reason string) (*gate.Hold, error) {
	return f.decide(id, who, reason, false)
}

func (f *fakeHolds) SubscribeHolds() (<-chan gate.HoldEvent, func()) {
	ch := make(chan gate.HoldEvent, 16)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.subs = slices.DeleteFunc(f.subs, func(c chan gate.HoldEvent) bool { return c == ch })
	}
}

func (f *fakeHolds) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// fakeContext records context supplied through the dashboard.
type fakeContext struct {
	mu  sync.Mutex
	got map[string][]gate.ContextInput
}

func (f *fakeContext) AddContext(id string, in gate.ContextInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = map[string][]gate.ContextInput{}
	}
	f.got[id] = append(f.got[id], in)
	return nil
}

// fakePolicy is a policy store holding one parsed policy.
type fakePolicy struct {
	p  *rules.Policy
	st rules.PolicyStatus
}

func (f fakePolicy) Status() rules.PolicyStatus { return f.st }
func (f fakePolicy) Current() *rules.Policy     { return f.p }

const testAdminToken = "test-admin-token-0123456789abcdef"

func openDB(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSessions(t *testing.T) *gate.Sessions {
	t.Helper()
	s, err := gate.NewSessions(openDB(t), gate.SessionsOptions{Key: make([]byte, gate.SessionKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLedger opens a real ledger in memory and returns it with the PEM of
// its public key.
func testLedger(t *testing.T) (*ledger.Ledger, []byte) {
	t.Helper()
	priv, pub, err := ledger.GenerateSigningKey("")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.LoadSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(t.Context(), openDB(t), ledger.Options{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, pub
}

// env is a running admin server with its fakes.
type env struct {
	srv      *httptest.Server
	server   *Server
	holds    *fakeHolds
	ctx      *fakeContext
	sessions *gate.Sessions
	opts     Options
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	e := &env{holds: newFakeHolds(), ctx: &fakeContext{}, sessions: newSessions(t)}
	e.opts = Options{AdminToken: testAdminToken, Sessions: e.sessions, Holds: e.holds, Context: e.ctx}
	if mod != nil {
		mod(&e.opts)
	}
	s, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.server = s
	e.srv = httptest.NewServer(s)
	t.Cleanup(e.srv.Close)
	return e
}

// client is a browser-like client: a cookie jar, redirects not followed.
func (e *env) client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", html)
	}
	return m[1]
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login signs in and returns the client and the login's CSRF token.
func (e *env) login(t *testing.T, name, password string) (*http.Client, string) {
	t.Helper()
	c := e.client(t)
	_, page := get(t, c, e.srv.URL+"/login")
	resp, body := postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfOf(t, page)}, "name": {name}, "password": {password}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login as %q: status %d, want 303\n%s", name, resp.StatusCode, body)
	}
	_, page = get(t, c, e.srv.URL+"/holds")
	return c, csrfOf(t, page)
}

func apiReq(t *testing.T, method, u, token, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func bcryptMin(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// stepUpHold is a pending STEP_UP hold of a repository deletion.
func stepUpHold(id string) *gate.Hold {
	now := time.Now().UTC()
	return &gate.Hold{
		ID: id, Source: gate.HoldStepUp,
		Action: aarm.Action{
			ID: "act_" + id, Tool: "github", Operation: "repos.delete", Effect: aarm.EffectDelete, Target: "acme/web",
			Destination: aarm.Destination{Host: "api.github.com", External: true}, Method: "DELETE", Path: "/repos/acme/web",
			Parameters: map[string]any{"owner": "acme", "repo": "web"},
			Identity: aarm.Identity{Human: "alice", Agent: "triage-bot", Session: "ses_1", Verified: true,
				Delegation: []string{"human:alice", "agent:triage-bot"}, Scope: []string{"github:acme/web"}},
		},
		Decision: aarm.Decision{Verdict: aarm.StepUp, Rule: "deletes-need-approval", Reason: "deleting a repository needs a person",
			RiskLevel: aarm.RiskCritical, Confidence: 0.9, Policy: aarm.PolicyRef{ID: "p", Version: "1", SHA256: "abc"}},
		Intent:    "Label my open GitHub issues in acme/web",
		Context:   map[string]any{"prior_actions": []any{map[string]any{"tool": "github", "operation": "issues.list", "verdict": "ALLOW"}}},
		Signals:   map[string]any{"dlp": map[string]any{"findings": []any{"aws_key"}}, "alignment": 0.2},
		CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute),
	}
}
