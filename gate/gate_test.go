package gate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/aarmproxy/aarm/rules"
)

// memLedger records receipts in memory; fail makes Append fail.
type memLedger struct {
	mu       sync.Mutex
	receipts []*aarm.Receipt
	fail     bool
}

func (l *memLedger) Append(_ context.Context, r *aarm.Receipt) (aarm.LedgerPosition, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return aarm.LedgerPosition{}, errors.New("disk full")
	}
	r.ID = newID("rct")
	r.Ledger.Index = uint64(len(l.receipts))
	l.receipts = append(l.receipts, r)
	return r.Ledger, nil
}

func (l *memLedger) all() []*aarm.Receipt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*aarm.Receipt(nil), l.receipts...)
}

func (l *memLedger) kinds() []string {
	var out []string
	for _, r := range l.all() {
		v := ""
		if r.Decision != nil {
			v = r.Decision.Verdict.String()
		}
		out = append(out, string(r.Kind)+":"+v)
	}
	return out
}

type staticPolicy struct{ p *rules.Policy }

func (s staticPolicy) Current() *rules.Policy { return s.p }

type panicMapper struct{}

func (panicMapper) Map(*inspect.Request) (*rules.Mapping, error) { panic("boom") }

const testPolicy = `
policy:
  id: gate-test
  version: "1"
  default: allow
rules:
  - id: no-secrets-host
    match: {tool: http, target: "exfil.example"}
    action: deny
    classification: forbidden
    reason: exfiltration host
  - id: repo-delete-needs-approval
    match: {tool: github, operation: repos.delete}
    action: step_up
    risk_level: high
    timeout: 2s
    reason: deleting a repository needs a person
  - id: approver-restricted
    match: {tool: github, operation: repos.transfer}
    action: step_up
    approvers: [carol]
    reason: transfers need carol
  - id: post-needs-ticket
    match:
      tool: slack
      operation: chat.postMessage
      context: {facts.ticket_approved: {eq: true}}
    action: allow
    timeout: 5s
    reason: posting needs an approved ticket
  - id: cap-per-page
    match: {tool: github, operation: issues.list}
    action: modify
    modifications:
      - {kind: query.set, path: per_page, value: "10"}
    reason: bulk reads are capped
`

type testGate struct {
	*Gate
	led      *memLedger
	sessions *Sessions
	clock    *fakeClock
}

func newTestGate(t *testing.T, opts Options) *testGate {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	db := openTestDB(t)
	if opts.Sessions == nil {
		opts.Sessions = newTestSessions(t, db, clock)
	}
	if opts.Mapper == nil {
		cat, err := rules.LoadCatalog(rules.CatalogOptions{Builtin: true})
		if err != nil {
			t.Fatal(err)
		}
		opts.Mapper = cat
	}
	if opts.Policy == nil {
		p, err := rules.ParsePolicy("test.yaml", []byte(testPolicy))
		if err != nil {
			t.Fatal(err)
		}
		opts.Policy = staticPolicy{p}
	}
	led, _ := opts.Ledger.(*memLedger)
	if opts.Ledger == nil {
		led = &memLedger{}
		opts.Ledger = led
	}
	if opts.DB == nil {
		opts.DB = db
	}
	opts.Limits = inspect.Limits{MaxBody: 1 << 20, MaxRatio: 50}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testGate{Gate: g, led: led, sessions: opts.Sessions, clock: clock}
}

func (tg *testGate) identity(t *testing.T, agent string) aarm.Identity {
	t.Helper()
	_, tok, err := tg.sessions.Start(SessionSpec{User: "alice", Agent: agent, Intent: "tidy up acme/web"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tg.sessions.Authenticate(string(tok))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func request(id aarm.Identity, method, rawURL, body string) *Request {
	u, _ := url.Parse(rawURL)
	h := http.Header{}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return &Request{Identity: id, Method: method, URL: u, Header: h, Body: []byte(body), ReceivedAt: time.Now()}
}

func TestMediateAllowWritesReceiptFirst(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	id := tg.identity(t, "bot")
	res := tg.Mediate(t.Context(), request(id, "POST", "https://api.github.com/repos/acme/web/issues", `{"title":"x"}`))
	if res.Decision.Verdict != aarm.Allow || res.ReceiptID == "" {
		t.Fatalf("got %v %q (%s), want ALLOW with a receipt", res.Decision.Verdict, res.ReceiptID, res.Decision.Reason)
	}
	if res.Action.Tool != "github" || res.Action.Operation != "issues.create" || res.Action.Target != "acme/web" || res.Action.Identity.Session != id.Session {
		t.Errorf("action: got %+v", res.Action)
	}
	rs := tg.led.all()
	if len(rs) != 1 || rs[0].Kind != aarm.KindDecision || rs[0].ID != res.ReceiptID || rs[0].Requester.Human != "alice" || rs[0].ContextHash == "" {
		t.Fatalf("receipts: got %+v", rs)
	}
	tg.Observe(t.Context(), res, &Response{StatusCode: 201, Body: []byte(`{"id":1}`), Duration: time.Millisecond})
	if got := tg.led.kinds(); strings.Join(got, ",") != "decision:ALLOW,outcome:ALLOW" {
		t.Errorf("receipts: got %v, want decision then outcome", got)
	}
	out := tg.led.all()[1]
	if out.Execution.StatusCode != 201 || !strings.HasPrefix(out.Execution.ResponseDigest, "sha256:") {
		t.Errorf("outcome: got %+v", out.Execution)
	}
}

func TestMediateFailsClosed(t *testing.T) {
	t.Parallel()
	t.Run("ledger unavailable", func(t *testing.T) {
		t.Parallel()
		tg := newTestGate(t, Options{Ledger: &memLedger{fail: true}})
		res := tg.Mediate(t.Context(), request(tg.identity(t, "b"), "GET", "https://api.github.com/user", ""))
		if res.Decision.Verdict != aarm.Deny || res.Status != http.StatusServiceUnavailable || !strings.Contains(res.Decision.Reason, "receipt") {
			t.Errorf("got %v %d %q, want DENY 503 naming the receipt", res.Decision.Verdict, res.Status, res.Decision.Reason)
		}
	})
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		tg := newTestGate(t, Options{Mapper: panicMapper{}})
		res := tg.Mediate(t.Context(), request(tg.identity(t, "b"), "GET", "https://api.github.com/user", ""))
		if res.Decision.Verdict != aarm.Deny || res.ReceiptID == "" {
			t.Errorf("got %v receipt %q, want DENY with a receipt", res.Decision.Verdict, res.ReceiptID)
		}
	})
	t.Run("no policy", func(t *testing.T) {
		t.Parallel()
		tg := newTestGate(t, Options{Policy: staticPolicy{}})
		res := tg.Mediate(t.Context(), request(tg.identity(t, "b"), "GET", "https://api.github.com/user", ""))
		if res.Decision.Verdict != aarm.Deny || !strings.Contains(res.Decision.Reason, "no policy") {
			t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
		}
	})
}

func TestMediateDenials(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{DenyHosts: []string{"*.evil.example"}})
	id := tg.identity(t, "b")
	cases := []struct {
		name   string
		req    *Request
		status int
		reason string
	}{
		{"refusal", &Request{Identity: id, Method: "POST", URL: mustURL("https://api.github.com/x"), Refusal: "body over limits.max_body", RefusalStatus: 413}, 413, "max_body"},
		{"deny list", request(id, "GET", "https://a.evil.example/", ""), 403, "hosts.deny"},
		{"forbidden rule", request(id, "POST", "https://exfil.example/drop", `{"a":1}`), 403, "exfiltration"},
		{"malformed json", request(id, "POST", "https://api.github.com/repos/acme/web/issues", `{"title":`), 403, "could not be inspected"},
	}
	for _, tc := range cases {
		res := tg.Mediate(t.Context(), tc.req)
		if res.Decision.Verdict != aarm.Deny || res.Status != tc.status || !strings.Contains(res.Decision.Reason, tc.reason) || res.ReceiptID == "" {
			t.Errorf("%s: got %v %d %q receipt %q, want DENY %d mentioning %q with a receipt", tc.name, res.Decision.Verdict, res.Status, res.Decision.Reason, res.ReceiptID, tc.status, tc.reason)
		}
	}
	// A session ended after the identity was captured is refused.
	if _, err := tg.sessions.End(id.Session, "revoked"); err != nil {
		t.Fatal(err)
	}
	res := tg.Mediate(t.Context(), request(id, "GET", "https://api.github.com/user", ""))
	if res.Decision.Verdict != aarm.Deny || res.Status != http.StatusProxyAuthRequired {
		t.Errorf("revoked: got %v %d", res.Decision.Verdict, res.Status)
	}
}

func TestMediateModify(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	res := tg.Mediate(t.Context(), request(tg.identity(t, "b"), "GET", "https://api.github.com/repos/acme/web/issues?per_page=100&state=open", ""))
	if res.Decision.Verdict != aarm.Modify || res.URL == nil {
		t.Fatalf("got %v %q, want MODIFY with an edited URL", res.Decision.Verdict, res.Decision.Reason)
	}
	if got := res.URL.Query().Get("per_page"); got != "10" {
		t.Errorf("per_page: got %q, want 10", got)
	}
	if res.URL.Query().Get("state") != "open" || !strings.Contains(res.Decision.Reason, "modified") {
		t.Errorf("got %s, reason %q", res.URL, res.Decision.Reason)
	}
}

// holdFor waits until the gate holds an action of the session.
func holdFor(t *testing.T, g *Gate, session string) *Hold {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, h := range g.Holds(HoldPending) {
			if h.Action.Identity.Session == session {
				return h
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no hold appeared")
	return nil
}

func mediateAsync(g *Gate, ctx context.Context, req *Request) <-chan *Result {
	ch := make(chan *Result, 1)
	go func() { ch <- g.Mediate(ctx, req) }()
	return ch
}

func TestStepUpApproveDenyTimeoutGone(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	del := "https://api.github.com/repos/acme/web"

	t.Run("approved", func(t *testing.T) {
		id := tg.identity(t, "bot-a")
		done := mediateAsync(tg.Gate, t.Context(), request(id, "DELETE", del, ""))
		h := holdFor(t, tg.Gate, id.Session)
		if h.Source != HoldStepUp || h.Decision.Rule != "repo-delete-needs-approval" || h.Intent != "tidy up acme/web" {
			t.Errorf("hold: got %+v", h)
		}
		if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "bot-a", Via: "token"}, ""); !errors.Is(err, ErrNotApprover) {
			t.Errorf("agent approving itself: got %v, want ErrNotApprover", err)
		}
		if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "alice", Via: "dashboard"}, "ok"); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.Decision.Verdict != aarm.Allow || !strings.Contains(res.Decision.Reason, "approved by alice") || res.ReceiptID == "" {
			t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
		}
		if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "alice"}, ""); !errors.Is(err, ErrHoldResolved) {
			t.Errorf("second approval: got %v, want ErrHoldResolved", err)
		}
	})
	t.Run("denied", func(t *testing.T) {
		id := tg.identity(t, "bot-b")
		done := mediateAsync(tg.Gate, t.Context(), request(id, "DELETE", del, ""))
		h := holdFor(t, tg.Gate, id.Session)
		if _, err := tg.Deny(t.Context(), h.ID, Approver{Name: "alice"}, ""); !errors.Is(err, ErrReasonRequired) {
			t.Errorf("deny without reason: got %v", err)
		}
		if _, err := tg.Deny(t.Context(), h.ID, Approver{Name: "alice"}, "not today"); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.Decision.Verdict != aarm.Deny || !strings.Contains(res.Decision.Reason, "not today") {
			t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		id := tg.identity(t, "bot-c")
		start := time.Now()
		res := tg.Mediate(t.Context(), request(id, "DELETE", del, ""))
		if res.Decision.Verdict != aarm.Deny || !strings.HasPrefix(res.Decision.Reason, "timeout") {
			t.Errorf("got %v %q, want a timeout DENY", res.Decision.Verdict, res.Decision.Reason)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("resolved after %s, before the rule's 2s timeout", d)
		}
		if hs := tg.Holds(HoldTimedOut); len(hs) == 0 {
			t.Errorf("no timed-out hold kept")
		}
	})
	t.Run("client gone", func(t *testing.T) {
		id := tg.identity(t, "bot-d")
		ctx, cancel := context.WithCancel(t.Context())
		done := mediateAsync(tg.Gate, ctx, request(id, "DELETE", del, ""))
		h := holdFor(t, tg.Gate, id.Session)
		cancel()
		res := <-done
		if res.Decision.Verdict != aarm.Deny || !strings.Contains(res.Decision.Reason, "client gone") {
			t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
		}
		if got, _ := tg.Hold(h.ID); got.State != HoldGone {
			t.Errorf("hold state: got %s, want client_gone", got.State)
		}
	})
	t.Run("restricted approvers", func(t *testing.T) {
		id := tg.identity(t, "bot-e")
		done := mediateAsync(tg.Gate, t.Context(), request(id, "POST", "https://api.github.com/repos/acme/web/transfer", `{"new_owner":"evil"}`))
		h := holdFor(t, tg.Gate, id.Session)
		if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "alice"}, ""); !errors.Is(err, ErrNotApprover) {
			t.Errorf("alice approving a carol-only hold: got %v", err)
		}
		if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "carol"}, ""); err != nil {
			t.Fatal(err)
		}
		if res := <-done; res.Decision.Verdict != aarm.Allow {
			t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
		}
	})
}

func TestFourEyes(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{Holds: HoldOptions{RequiredApprovals: 2}})
	id := tg.identity(t, "bot")
	done := mediateAsync(tg.Gate, t.Context(), request(id, "DELETE", "https://api.github.com/repos/acme/web", ""))
	h := holdFor(t, tg.Gate, id.Session)
	if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "alice"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "alice"}, ""); !errors.Is(err, ErrSameApprover) {
		t.Errorf("same approver twice: got %v, want ErrSameApprover", err)
	}
	select {
	case res := <-done:
		t.Fatalf("released after one of two approvals: %v", res.Decision.Verdict)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "bob"}, ""); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.Decision.Verdict != aarm.Allow || !strings.Contains(res.Decision.Reason, "alice, bob") {
		t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
}

func TestDeferReleasedByContextAndOrdering(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	id := tg.identity(t, "bot")
	post := `{"channel":"C123","text":"deploy done"}`
	first := mediateAsync(tg.Gate, t.Context(), request(id, "POST", "https://slack.com/api/chat.postMessage", post))
	h := holdFor(t, tg.Gate, id.Session)
	if h.Source != HoldDefer || h.Decision.Classification != aarm.ClassContextDependentDefer {
		t.Fatalf("hold: got source %s classification %s", h.Source, h.Decision.Classification)
	}
	// A dependent call (same session, same target) waits behind it...
	second := mediateAsync(tg.Gate, t.Context(), request(id, "POST", "https://slack.com/api/chat.postMessage", post))
	// ...while an independent one proceeds.
	if res := tg.Mediate(t.Context(), request(id, "GET", "https://api.github.com/user", "")); res.Decision.Verdict != aarm.Allow {
		t.Errorf("independent call: got %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
	select {
	case res := <-second:
		t.Fatalf("dependent call did not wait: %v %q", res.Decision.Verdict, res.Decision.Reason)
	case <-time.After(50 * time.Millisecond):
	}
	if err := tg.AddContext(id.Session, ContextInput{Facts: map[string]any{"ticket_approved": true}, Source: "ops"}); err != nil {
		t.Fatal(err)
	}
	if res := <-first; res.Decision.Verdict != aarm.Allow {
		t.Errorf("released deferral: got %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
	if res := <-second; res.Decision.Verdict != aarm.Allow {
		t.Errorf("dependent call after release: got %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
	got, _ := tg.Hold(h.ID)
	if got.State != HoldReleased || !strings.Contains(got.Resolution, "context supplied by ops") {
		t.Errorf("hold: got %s %q", got.State, got.Resolution)
	}
	var kinds []string
	for _, r := range tg.led.all() {
		kinds = append(kinds, string(r.Kind))
	}
	if s := strings.Join(kinds, ","); !strings.Contains(s, "deferral") || !strings.Contains(s, "resolution") {
		t.Errorf("receipts: got %s, want a deferral and a resolution", s)
	}
}

func TestMaxChainBoundsHolds(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{Holds: HoldOptions{MaxChain: 1}})
	id := tg.identity(t, "bot")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mediateAsync(tg.Gate, ctx, request(id, "DELETE", "https://api.github.com/repos/acme/web", ""))
	holdFor(t, tg.Gate, id.Session)
	res := tg.Mediate(t.Context(), request(id, "DELETE", "https://api.github.com/repos/acme/api", ""))
	if res.Decision.Verdict != aarm.Deny || !strings.Contains(res.Decision.Reason, "max_chain") {
		t.Errorf("got %v %q, want DENY naming holds.max_chain", res.Decision.Verdict, res.Decision.Reason)
	}
}

func TestLeftoverHoldsDeniedOnRestart(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	clock := &fakeClock{t: time.Now()}
	sessions := newTestSessions(t, db, clock)
	led := &memLedger{}
	tg := newTestGate(t, Options{DB: db, Sessions: sessions, Ledger: led})
	id := tg.identity(t, "bot")
	ctx, cancel := context.WithCancel(t.Context())
	mediateAsync(tg.Gate, ctx, request(id, "DELETE", "https://api.github.com/repos/acme/web", ""))
	h := holdFor(t, tg.Gate, id.Session)
	// Simulate a crash: the pending hold stays persisted as pending.
	cancel()
	time.Sleep(20 * time.Millisecond)
	_ = tg.holds.persist(h)

	before := len(led.all())
	tg2 := newTestGate(t, Options{DB: db, Sessions: sessions, Ledger: led})
	got, ok := tg2.Hold(h.ID)
	if !ok || got.State != HoldAborted || got.Resolution != "process restart" {
		t.Fatalf("after restart: got %+v, %v", got, ok)
	}
	rs := led.all()[before:]
	if len(rs) != 1 || rs[0].Kind != aarm.KindResolution || rs[0].Decision.Verdict != aarm.Deny || rs[0].Deferral.ResolutionMethod != "process_restart" {
		t.Errorf("restart receipts: got %+v", rs)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	_, tok, _ := tg.sessions.Start(SessionSpec{User: "u", Agent: "a"})
	basic := func(u, p string) string {
		return "Basic " + b64(u+":"+p)
	}
	if id, err := tg.Authenticate(basic("a", string(tok))); err != nil || !id.Verified {
		t.Errorf("valid: got %+v %v", id, err)
	}
	for h, want := range map[string]error{"": ErrNoToken, "Bearer x": ErrBadToken, basic("a", "nope"): ErrBadToken, basic("a", ""): ErrNoToken} {
		if _, err := tg.Authenticate(h); !errors.Is(err, want) {
			t.Errorf("Authenticate(%q): got %v, want %v", h, err, want)
		}
	}
	anon := newTestGate(t, Options{AllowAnonymous: true})
	if id, err := anon.Authenticate(""); err != nil || id.Verified || id.Agent != "anonymous" {
		t.Errorf("anonymous: got %+v %v", id, err)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestReceiptsHashSensitiveParameters(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	id := tg.identity(t, "bot")
	const tok = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	res := tg.Mediate(t.Context(), request(id, "POST", "https://api.telegram.org/bot"+tok+"/sendMessage", `{"chat_id":"42","text":"hi"}`))
	if res.ReceiptID == "" {
		t.Fatalf("no receipt: %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
	r := tg.led.all()[0]
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), tok) || strings.Contains(string(b), "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw") {
		t.Errorf("receipt carries the bot token: %s", b)
	}
	if !strings.Contains(r.Action.Path, "{_token}") {
		t.Errorf("receipt path: got %q, want the token replaced by {_token}", r.Action.Path)
	}
	if v, _ := r.Action.Parameters["_token"].(string); !strings.HasPrefix(v, "sha256:") {
		t.Errorf("receipt _token parameter: got %q, want its SHA-256", v)
	}
}

func TestCredentialHeadersScannedUnlessOwn(t *testing.T) {
	t.Parallel()
	p, err := rules.ParsePolicy("default.yaml", rules.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGate(t, Options{Policy: staticPolicy{p}})
	id := tg.identity(t, "bot")
	// A classic token with a valid checksum (inspect's test helper made it).
	const gh = "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"
	cases := []struct {
		name, method, url, header string
		want                      aarm.Verdict
	}{
		{"own GitHub token to GitHub", "GET", "https://api.github.com/user", "token " + gh, aarm.Allow},
		{"GitHub token to a webhook bin", "POST", "https://webhook.site/abc-123", "Bearer " + gh, aarm.Deny},
		{"GitHub token to Slack", "POST", "https://slack.com/api/chat.postMessage", "Bearer " + gh, aarm.Deny},
	}
	for _, tc := range cases {
		req := request(id, tc.method, tc.url, `{"text":"hi","channel":"C1"}`)
		if tc.method == "GET" {
			req = request(id, tc.method, tc.url, "")
		}
		req.Header.Set("Authorization", tc.header)
		res := tg.Mediate(t.Context(), req)
		if res.Decision.Verdict != tc.want {
			t.Errorf("%s: got %v %q (%s/%s), want %v", tc.name, res.Decision.Verdict, res.Decision.Reason, res.Action.Tool, res.Action.Operation, tc.want)
		}
	}
}

func TestReceiptsRedactSecretsInPathsAndLists(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{})
	id := tg.identity(t, "bot")
	const gh = "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"
	tg.Mediate(t.Context(), request(id, "GET", "https://evil.example/u/"+gh, ""))
	req := request(id, "POST", "https://slack.com/api/chat.postMessage", "channel=C1&text=hello&text="+gh)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tg.Mediate(t.Context(), req)
	for _, r := range tg.led.all() {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), gh) {
			t.Errorf("receipt %s %s carries the token: %s", r.Kind, r.Action.Path, b)
		}
	}
}

func TestFourEyesNeedsTwoPrincipalsNotTwoNames(t *testing.T) {
	t.Parallel()
	tg := newTestGate(t, Options{Holds: HoldOptions{RequiredApprovals: 2}})
	id := tg.identity(t, "bot")
	done := mediateAsync(tg.Gate, t.Context(), request(id, "DELETE", "https://api.github.com/repos/acme/web", ""))
	h := holdFor(t, tg.Gate, id.Session)
	if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "alice", Via: "token"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "bob", Via: "token"}, ""); !errors.Is(err, ErrSameApprover) {
		t.Errorf("second admin-token approval under another name: got %v, want ErrSameApprover", err)
	}
	if _, err := tg.Approve(t.Context(), h.ID, Approver{Name: "carol", Via: "dashboard"}, ""); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.Decision.Verdict != aarm.Allow || !strings.Contains(res.Decision.Reason, "alice (admin token), carol") {
		t.Errorf("got %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
}

func TestModifyThatMissesTheValueIsDenied(t *testing.T) {
	t.Parallel()
	p, err := rules.ParsePolicy("cap.yaml", []byte(`
policy: {id: cap, version: "1", default: allow}
rules:
  - id: cap-history
    match: {tool: slack, operation: conversations.history, parameters: {limit: {gt: 100}}}
    action: modify
    modifications:
      - {kind: query.set, path: limit, value: "100"}
    reason: history reads are capped at 100 messages
`))
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGate(t, Options{Policy: staticPolicy{p}})
	id := tg.identity(t, "bot")
	// The limit travels in the query: the cap applies.
	res := tg.Mediate(t.Context(), request(id, "GET", "https://slack.com/api/conversations.history?channel=C1&limit=1000", ""))
	if res.Decision.Verdict != aarm.Modify || res.URL.Query().Get("limit") != "100" {
		t.Errorf("query limit: got %v %q %v", res.Decision.Verdict, res.Decision.Reason, res.URL)
	}
	// The limit travels in the form body: setting the query would not cap
	// it, so the request is refused instead of forwarded uncapped.
	req := request(id, "POST", "https://slack.com/api/conversations.history", "channel=C1&limit=1000")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res = tg.Mediate(t.Context(), req)
	if res.Decision.Verdict != aarm.Deny || !strings.Contains(res.Decision.Reason, "did not take effect") && !strings.Contains(res.Decision.Reason, "still says") {
		t.Errorf("body limit: got %v %q", res.Decision.Verdict, res.Decision.Reason)
	}
}
