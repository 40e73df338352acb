package ui

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

var dashboardPages = []string{"/", "/holds", "/holds?state=all", "/holds/list", "/holds/h1", "/blocked", "/sessions", "/receipts", "/policy"}

func TestPagesRequireLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	c := e.client(t)
	for _, p := range dashboardPages {
		resp, body := get(t, c, e.srv.URL+p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without login: got %d Location %q, want 303 to /login", p, resp.StatusCode, resp.Header.Get("Location"))
		}
		if strings.Contains(body, "repos.delete") {
			t.Errorf("GET %s without login leaked hold content", p)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/events/holds", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("event stream without login: got %d, want 401", resp.StatusCode)
	}
	for _, p := range []string{"/holds/h1/approve", "/holds/h1/deny", "/holds/h1/context", "/logout", "/ledger/verify"} {
		resp, _ := postForm(t, c, e.srv.URL+p, url.Values{"reason": {"x"}, "csrf": {"x"}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without login: got %d, want 401", p, resp.StatusCode)
		}
	}
	if h, _ := e.holds.Hold("h1"); h.State != gate.HoldPending {
		t.Errorf("hold state after unauthenticated posts: got %s, want pending", h.State)
	}
}

func TestAPIRequiresAdminToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	endpoints := []struct{ method, path string }{
		{"GET", "/api/v1/approvals"}, {"GET", "/api/v1/approvals/h1"},
		{"POST", "/api/v1/approvals/h1/approve"}, {"POST", "/api/v1/approvals/h1/deny"},
		{"GET", "/api/v1/receipts"}, {"GET", "/api/v1/receipts/x"},
		{"GET", "/api/v1/ledger/checkpoint"}, {"GET", "/api/v1/ledger/proof?index=0"},
		{"GET", "/api/v1/sessions"},
	}
	for _, ep := range endpoints {
		for _, tok := range []string{"", "wrong-token-wrong-token-wrong"} {
			resp, _ := apiReq(t, ep.method, e.srv.URL+ep.path, tok, `{"reason":"x"}`)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: got %d, want 401", ep.method, ep.path, tok, resp.StatusCode)
			}
		}
	}
	// A dashboard login does not open the bearer API.
	c, _ := e.login(t, "", testAdminToken)
	resp, _ := get(t, c, e.srv.URL+"/api/v1/approvals")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with a dashboard cookie: got %d, want 401", resp.StatusCode)
	}
}

func TestSessionTokenCannotApprove(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	sess, tok, err := e.sessions.Start(gate.SessionSpec{User: "alice", Agent: "triage-bot"})
	if err != nil {
		t.Fatal(err)
	}
	h := stepUpHold("h1")
	h.Action.Identity.Session = sess.ID
	e.holds.add(h)
	for _, path := range []string{"/api/v1/approvals/h1/approve", "/api/v1/approvals/h1/deny"} {
		resp, body := apiReq(t, "POST", e.srv.URL+path, string(tok), `{"reason":"mine"}`)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "session token") {
			t.Errorf("POST %s with the session token: got %d %s, want 403 naming the session token", path, resp.StatusCode, body)
		}
	}
	// Nor can the admin token be used to act under the session's name.
	resp, _ := apiReq(t, "POST", e.srv.URL+"/api/v1/approvals/h1/approve", testAdminToken, `{}`, ApproverHeader, string(tok))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("approve with the session token as approver name: got %d, want 403", resp.StatusCode)
	}
	if got, _ := e.holds.Hold("h1"); got.State != gate.HoldPending || len(got.Approvals) != 0 {
		t.Errorf("hold after session-token attempts: got %s with %d approvals, want pending with none", got.State, len(got.Approvals))
	}
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.Approvers = []ApproverAccount{{Name: "bob", PasswordHash: bcryptMin(t, "correct horse battery")}}
	})
	tests := []struct {
		name, user, password string
		want                 int
	}{
		{"admin token", "", testAdminToken, http.StatusSeeOther},
		{"admin token named", "admin", testAdminToken, http.StatusSeeOther},
		{"approver", "bob", "correct horse battery", http.StatusSeeOther},
		{"approver wrong password", "bob", "wrong", http.StatusUnauthorized},
		{"unknown user", "mallory", "correct horse battery", http.StatusUnauthorized},
		{"admin wrong token", "", "nope", http.StatusUnauthorized},
		{"approver with admin token", "bob", testAdminToken, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t)
			_, page := get(t, c, e.srv.URL+"/login")
			resp, _ := postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfOf(t, page)}, "name": {tc.user}, "password": {tc.password}, "next": {"/policy"}})
			if resp.StatusCode != tc.want {
				t.Fatalf("login: got %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusSeeOther {
				return
			}
			if loc := resp.Header.Get("Location"); loc != "/policy" {
				t.Errorf("redirect after login: got %q, want /policy", loc)
			}
			var sc *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == "aarm_session" {
					sc = ck
				}
			}
			if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure || sc.Path != "/" {
				t.Fatalf("session cookie: got %+v, want HttpOnly SameSite=Strict Path=/ (not Secure without TLS)", sc)
			}
			r2, body := get(t, c, e.srv.URL+"/holds")
			if r2.StatusCode != http.StatusOK {
				t.Fatalf("holds after login: got %d", r2.StatusCode)
			}
			want := tc.user
			if want == "" {
				want = "admin"
			}
			if !strings.Contains(body, `<span class="who">`+want+`</span>`) {
				t.Errorf("page does not show the approver %q", want)
			}
			r3, _ := postForm(t, c, e.srv.URL+"/logout", url.Values{"csrf": {csrfOf(t, body)}})
			if r3.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: got %d, want 303", r3.StatusCode)
			}
			// The old cookie is dead even if a client kept it.
			req, _ := http.NewRequest("GET", e.srv.URL+"/holds", nil)
			req.AddCookie(&http.Cookie{Name: "aarm_session", Value: sc.Value})
			r4, err := e.client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r4.Body.Close()
			if r4.StatusCode != http.StatusSeeOther {
				t.Errorf("old cookie after logout: got %d, want 303 to login", r4.StatusCode)
			}
		})
	}
}

func TestSecureCookiesWithTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.TLS = true })
	c := e.client(t)
	resp, page := get(t, c, e.srv.URL+"/login")
	var loginCookie *http.Cookie
	for _, ck := range resp.Cookies() {
		loginCookie = ck
	}
	if loginCookie == nil || loginCookie.Name != "__Host-aarm_login" || !loginCookie.Secure {
		t.Fatalf("login CSRF cookie with TLS: got %+v, want Secure __Host-aarm_login", loginCookie)
	}
	// The jar will not send a Secure cookie over http: send it by hand.
	req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}, "password": {testAdminToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: loginCookie.Name, Value: loginCookie.Value})
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	var sc *http.Cookie
	for _, ck := range r2.Cookies() {
		if ck.Name == "__Host-aarm_session" {
			sc = ck
		}
	}
	if r2.StatusCode != http.StatusSeeOther || sc == nil || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("TLS login: got %d cookie %+v, want 303 and a Secure HttpOnly SameSite=Strict __Host- cookie", r2.StatusCode, sc)
	}
}

func TestLoginNeedsCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.client(t)
	resp, _ := postForm(t, c, e.srv.URL+"/login", url.Values{"password": {testAdminToken}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF: got %d, want 403", resp.StatusCode)
	}
	get(t, c, e.srv.URL+"/login") // sets the cookie
	resp, _ = postForm(t, c, e.srv.URL+"/login", url.Values{"password": {testAdminToken}, "csrf": {"forged"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login with a forged CSRF token: got %d, want 403", resp.StatusCode)
	}
}

func TestLoginRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.client(t)
	var last *http.Response
	for i := range loginUserBurst + 1 {
		_, page := get(t, c, e.srv.URL+"/login")
		last, _ = postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfOf(t, page)}, "name": {"bob"}, "password": {"guess"}})
		if i < loginUserBurst && last.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: got %d, want 401", i+1, last.StatusCode)
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("attempt %d: got %d Retry-After %q, want 429 with Retry-After", loginUserBurst+1, last.StatusCode, last.Header.Get("Retry-After"))
	}
	// The right password is refused too while limited.
	_, page := get(t, c, e.srv.URL+"/login")
	resp, _ := postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfOf(t, page)}, "name": {"bob"}, "password": {testAdminToken}})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("login while limited: got %d, want 429", resp.StatusCode)
	}
	// The per-address bucket catches spraying over many names.
	limited := false
	for i := range loginIPBurst + 1 {
		_, page := get(t, c, e.srv.URL+"/login")
		resp, _ := postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfOf(t, page)}, "name": {"user" + string(rune('a'+i))}, "password": {"guess"}})
		limited = limited || resp.StatusCode == http.StatusTooManyRequests
	}
	if !limited {
		t.Errorf("%d attempts from one address over distinct names were never limited", loginIPBurst+1)
	}
}

func TestPostsNeedCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	c, csrf := e.login(t, "", testAdminToken)
	tests := []struct {
		name string
		form url.Values
	}{
		{"no token", url.Values{"reason": {"ok"}}},
		{"empty token", url.Values{"reason": {"ok"}, "csrf": {""}}},
		{"wrong token", url.Values{"reason": {"ok"}, "csrf": {csrf[:len(csrf)-2] + "xx"}}},
	}
	for _, tc := range tests {
		for _, p := range []string{"/holds/h1/approve", "/holds/h1/deny", "/holds/h1/context", "/logout"} {
			resp, _ := postForm(t, c, e.srv.URL+p, tc.form)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: POST %s: got %d, want 403", tc.name, p, resp.StatusCode)
			}
		}
	}
	if h, _ := e.holds.Hold("h1"); h.State != gate.HoldPending || e.holds.calls != 0 {
		t.Errorf("after CSRF-less posts: state %s, %d decision calls; want pending and none", h.State, e.holds.calls)
	}
	// Still logged in: logout without a token did nothing.
	if resp, _ := get(t, c, e.srv.URL+"/holds"); resp.StatusCode != http.StatusOK {
		t.Errorf("session after CSRF-less logout: got %d, want 200", resp.StatusCode)
	}
}

func TestCrossOriginPostsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	c, csrf := e.login(t, "", testAdminToken)
	tests := []struct {
		name string
		hdr  []string
		want int
	}{
		{"foreign origin", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site other port", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"same origin", []string{"Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin"}, http.StatusSeeOther},
	}
	for _, tc := range tests {
		resp, _ := postForm(t, c, e.srv.URL+"/holds/h1/approve", url.Values{"csrf": {csrf}}, tc.hdr...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	// Cross-origin login attempts are refused before the password is looked at.
	c = e.client(t)
	_, page := get(t, c, e.srv.URL+"/login")
	resp, _ := postForm(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfOf(t, page)}, "password": {testAdminToken}}, "Origin", "http://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login: got %d, want 403", resp.StatusCode)
	}
}

func TestDashboardApproveIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	c, csrf := e.login(t, "", testAdminToken)
	form := url.Values{"csrf": {csrf}, "reason": {"looks right"}}
	resp, _ := postForm(t, c, e.srv.URL+"/holds/h1/approve", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/holds/h1?done=approved" {
		t.Fatalf("approve: got %d %q, want 303 to /holds/h1?done=approved", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = postForm(t, c, e.srv.URL+"/holds/h1/approve", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/holds/h1?done=already" {
		t.Fatalf("second approve: got %d %q, want 303 to /holds/h1?done=already", resp.StatusCode, resp.Header.Get("Location"))
	}
	h, _ := e.holds.Hold("h1")
	want := []string{"admin/dashboard"}
	var got []string
	for _, a := range h.Approvals {
		got = append(got, a.Approver)
	}
	if h.State != gate.HoldApproved || !cmp.Equal(got, want) {
		t.Errorf("after double approve: state %s approvals %v, want approved with %v", h.State, got, want)
	}
	_, body := get(t, c, e.srv.URL+"/holds/h1?done=already")
	if !strings.Contains(body, "already resolved") || !strings.Contains(body, "approved") || strings.Contains(body, `action="/holds/h1/approve"`) {
		t.Errorf("resolved hold page should say it was already resolved and offer no buttons")
	}
}

func TestDashboardDeny(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	c, csrf := e.login(t, "", testAdminToken)
	resp, body := postForm(t, c, e.srv.URL+"/holds/h1/deny", url.Values{"csrf": {csrf}, "reason": {"  "}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "reason is required") {
		t.Fatalf("deny without reason: got %d, want 400 saying a reason is required", resp.StatusCode)
	}
	if h, _ := e.holds.Hold("h1"); h.State != gate.HoldPending {
		t.Fatalf("hold after reasonless deny: got %s, want pending", h.State)
	}
	resp, _ = postForm(t, c, e.srv.URL+"/holds/h1/deny", url.Values{"csrf": {csrf}, "reason": {"not part of the task"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/holds/h1?done=denied" {
		t.Fatalf("deny: got %d %q, want 303 to ?done=denied", resp.StatusCode, resp.Header.Get("Location"))
	}
	if h, _ := e.holds.Hold("h1"); h.State != gate.HoldDenied || !strings.Contains(h.Resolution, "not part of the task") {
		t.Errorf("hold after deny: got %s %q, want denied with the reason", h.State, h.Resolution)
	}
}

func TestDashboardApproverRestriction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.Approvers = []ApproverAccount{{Name: "bob", PasswordHash: bcryptMin(t, "bob-password")}, {Name: "carol", PasswordHash: bcryptMin(t, "carol-password")}}
	})
	h := stepUpHold("h1")
	h.Decision.Approvers = []string{"carol"}
	e.holds.add(h)
	c, csrf := e.login(t, "bob", "bob-password")
	resp, body := postForm(t, c, e.srv.URL+"/holds/h1/approve", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "may not decide") {
		t.Fatalf("approve by a non-listed approver: got %d, want 403", resp.StatusCode)
	}
	c, csrf = e.login(t, "carol", "carol-password")
	resp, _ = postForm(t, c, e.srv.URL+"/holds/h1/approve", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve by carol: got %d, want 303", resp.StatusCode)
	}
}

func TestSupplyContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	h := stepUpHold("h1")
	h.Source = gate.HoldDefer
	e.holds.add(h)
	c, csrf := e.login(t, "", testAdminToken)
	resp, _ := postForm(t, c, e.srv.URL+"/holds/h1/context", url.Values{"csrf": {csrf}, "facts": {"ticket: OPS-42\napproved_by_owner = true\n"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/holds/h1?done=context" {
		t.Fatalf("supply context: got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	want := []gate.ContextInput{{Facts: map[string]any{"ticket": "OPS-42", "approved_by_owner": true}, Source: "admin"}}
	if diff := cmp.Diff(want, e.ctx.got["ses_1"]); diff != "" {
		t.Errorf("context supplied (-want +got):\n%s", diff)
	}
	resp, _ = postForm(t, c, e.srv.URL+"/holds/h1/context", url.Values{"csrf": {csrf}, "facts": {"no separator"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed facts: got %d, want 400", resp.StatusCode)
	}
}

func TestParseFacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    map[string]any
		wantErr bool
	}{
		{"a: 1", map[string]any{"a": 1.0}, false},
		{"a=true\n\n b : two words ", map[string]any{"a": true, "b": "two words"}, false},
		{`q: "42"`, map[string]any{"q": "42"}, false},
		{"l: [1, \"x\"]", map[string]any{"l": []any{1.0, "x"}}, false},
		{"s: OPS-42 {x}", map[string]any{"s": "OPS-42 {x}"}, false},
		{"url: https://x.example/a=b", map[string]any{"url": "https://x.example/a=b"}, false},
		{"", nil, true},
		{"novalue", nil, true},
		{": v", nil, true},
	}
	for _, tc := range tests {
		got, err := parseFacts(tc.in)
		if (err != nil) != tc.wantErr || !cmp.Equal(got, tc.want) {
			t.Errorf("parseFacts(%q): got %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                      "/holds",
		"/receipts?session=x":   "/receipts?session=x",
		"//evil.example/":       "/holds",
		"/\\evil.example":       "/holds",
		"https://evil.example/": "/holds",
		"javascript:alert(1)":   "/holds",
		"/a\r\nSet-Cookie: x":   "/holds",
	}
	for in, want := range tests {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestCSPOnEveryPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	c, _ := e.login(t, "", testAdminToken)
	pages := append([]string{"/login", "/static/app.css", "/static/app.js", "/holds/nope", "/sessions/nope", "/receipts/nope"}, dashboardPages...)
	for _, p := range pages {
		resp, _ := get(t, c, e.srv.URL+p)
		if got := resp.Header.Get("Content-Security-Policy"); got != contentSecurityPolicy {
			t.Errorf("GET %s: CSP %q, want %q", p, got, contentSecurityPolicy)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: missing X-Frame-Options/X-Content-Type-Options", p)
		}
	}
	// Pages carry no inline script or style for the CSP to have to allow.
	for _, p := range dashboardPages {
		_, body := get(t, c, e.srv.URL+p)
		if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "<style") {
			t.Errorf("GET %s has inline script or style", p)
		}
	}
}

func TestHoldsPageShowsKindsAndRisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := stepUpHold("h-step")
	b := stepUpHold("h-defer")
	b.Source, b.Decision.Verdict, b.Decision.RiskLevel = gate.HoldDefer, aarm.Defer, aarm.RiskMedium
	b.Action.Operation = "issues.close"
	e.holds.add(a)
	e.holds.add(b)
	c, _ := e.login(t, "", testAdminToken)
	_, body := get(t, c, e.srv.URL+"/holds")
	for _, want := range []string{
		`class="row src-step_up"`, `class="row src-defer"`, `<span class="badge src-step_up">Approval</span>`,
		`<span class="badge src-defer">Deferred</span>`, `risk-critical`, `risk-medium`, `href="/holds/h-step"`,
		`data-live="/holds/list?state=pending"`, `data-expires=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("holds page lacks %s", want)
		}
	}
	if i, j := strings.Index(body, "h-step"), strings.Index(body, "h-defer"); i < 0 || j < 0 || i > j {
		t.Errorf("holds should keep the service's order (risk first): h-step at %d, h-defer at %d", i, j)
	}
	_, detail := get(t, c, e.srv.URL+"/holds/h-step")
	for _, want := range []string{
		"Label my open GitHub issues in acme/web", "repos.delete", "DELETE /repos/acme/web", "deletes-need-approval",
		"deleting a repository needs a person", "human:alice", "agent:triage-bot", "github:acme/web", "issues.list",
		"aws_key", "0.90", `class="countdown"`, "Approval needed (STEP_UP)", `name="reason" rows="2" required`,
	} {
		if !strings.Contains(detail, want) {
			t.Errorf("hold detail lacks %q", want)
		}
	}
	_, detail = get(t, c, e.srv.URL+"/holds/h-defer")
	if !strings.Contains(detail, "Deferred (DEFER)") || !strings.Contains(detail, `action="/holds/h-defer/context"`) {
		t.Errorf("deferred hold detail should say DEFER and offer the context form")
	}
}

func TestHoldEventsStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c, _ := e.login(t, "", testAdminToken)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/events/holds", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("event stream: got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for deadline := time.Now().Add(5 * time.Second); e.holds.subscribers() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("stream never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h := stepUpHold("h-new")
	h.Action.Parameters["x"] = "<script>alert(1)</script>"
	e.holds.add(h)
	sc := bufio.NewScanner(resp.Body)
	var event string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "hold" {
			var got holdEventData
			if err := json.Unmarshal([]byte(v), &got); err != nil {
				t.Fatalf("event data %q: %v", v, err)
			}
			want := holdEventData{Type: "created", ID: "h-new", Source: gate.HoldStepUp, State: gate.HoldPending, Risk: "critical"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("hold event (-want +got):\n%s", diff)
			}
			if strings.Contains(v, "script") {
				t.Errorf("event data carries agent text: %s", v)
			}
			// Shutting down ends the stream.
			e.server.CloseStreams()
			e.server.CloseStreams()
			for sc.Scan() {
			}
			for deadline := time.Now().Add(5 * time.Second); e.holds.subscribers() != 0; {
				if time.Now().After(deadline) {
					t.Fatal("stream still subscribed after CloseStreams")
				}
				time.Sleep(10 * time.Millisecond)
			}
			return
		}
	}
	t.Fatalf("stream ended without a hold event: %v", sc.Err())
}

func TestSessionsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	sess, _, err := e.sessions.Start(gate.SessionSpec{User: "alice", Agent: "triage-bot", Intent: "Label <b>issues</b>"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.login(t, "", testAdminToken)
	_, body := get(t, c, e.srv.URL+"/sessions")
	if !strings.Contains(body, `href="/sessions/`+sess.ID+`"`) || !strings.Contains(body, "Label &lt;b&gt;issues&lt;/b&gt;") {
		t.Errorf("sessions page lacks the session or does not escape its intent")
	}
	resp, body := get(t, c, e.srv.URL+"/sessions/"+sess.ID)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "triage-bot") || !strings.Contains(body, "active") {
		t.Errorf("session page: got %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, e.srv.URL+"/sessions/ses_nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown session: got %d, want 404", resp.StatusCode)
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	if _, err := HashPassword("short"); err == nil {
		t.Error("HashPassword accepted a 5-character password")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("HashPassword accepted a password bcrypt would truncate")
	}
	// The race detector makes a cost-12 hash take most of a minute.
	hash := HashPassword
	if raceEnabled {
		hash = func(pw string) (string, error) { return hashPassword(pw, bcrypt.MinCost) }
	}
	h, err := hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); !raceEnabled && c != bcryptCost {
		t.Errorf("HashPassword cost: got %d, want %d", c, bcryptCost)
	}
	if err := validateApprovers([]ApproverAccount{{Name: "bob", PasswordHash: h}}); err != nil {
		t.Errorf("a HashPassword hash is refused: %v", err)
	}
	d := &dashboard{accounts: map[string]string{"bob": h}, adminToken: testAdminToken}
	d.dummyHash = newDummyHash(d.accounts)
	if _, ok := d.authenticate("bob", "correct horse battery"); !ok {
		t.Error("the hashed password does not log in")
	}
}

func TestNewRejectsBadApprovers(t *testing.T) {
	t.Parallel()
	good := bcryptMin(t, "password1")
	tests := map[string][]ApproverAccount{
		"plain password":   {{Name: "bob", PasswordHash: "password1"}},
		"reserved admin":   {{Name: "admin", PasswordHash: good}},
		"duplicate":        {{Name: "bob", PasswordHash: good}, {Name: "bob", PasswordHash: good}},
		"space in name":    {{Name: "bob smith", PasswordHash: good}},
		"token as name":    {{Name: "aarm1.abc", PasswordHash: good}},
		"empty name":       {{Name: "", PasswordHash: good}},
		"html in the name": {{Name: "<b>", PasswordHash: good}},
	}
	sessions := newSessions(t)
	for name, accts := range tests {
		if _, err := New(Options{AdminToken: testAdminToken, Sessions: sessions, Approvers: accts}); err == nil {
			t.Errorf("%s: New accepted %+v", name, accts)
		}
	}
	if _, err := New(Options{AdminToken: testAdminToken, Sessions: sessions, DashboardURL: "javascript:alert(1)"}); err == nil {
		t.Error("New accepted a javascript: dashboard URL")
	}
}
