package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// dashboardPolicy holds repository deletes for a person (long enough to be
// decided in the browser) and repository setting changes with a short
// timeout, so the timeout path can be watched.
const dashboardPolicy = `policy:
  id: e2e-dashboard
  version: "1"
  default: allow
rules:
  - id: deletes-need-approval
    match: {tool: github, operation: repos.delete}
    action: STEP_UP
    risk_level: critical
    timeout: 2m
    reason: deleting a repository needs a person
  - id: settings-need-approval
    match: {tool: github, operation: repos.update}
    action: STEP_UP
    risk_level: high
    timeout: 3s
    reason: changing repository settings needs a person
  - id: new-issues-need-approval
    match: {tool: github, operation: issues.create}
    action: STEP_UP
    risk_level: medium
    timeout: 2m
    reason: new issues are reviewed
`

// chromiumPath is Debian's Chromium, installed by scripts/install-test-deps.sh.
const chromiumPath = "/usr/bin/chromium"

// artifactsDir receives the screenshots the README shows.
const artifactsDir = "artifacts"

// newBrowser starts a headless Chromium with a fresh profile, no proxy and no
// background traffic, and returns its tab's context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("AARM_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("chromium not installed at %s: run scripts/install-test-deps.sh", path)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// browse runs steps with a time bound, failing the test on error.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

func browserRun[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// loginAdmin signs in to the dashboard with the admin token.
func loginAdmin(t *testing.T, ctx context.Context, inst *instance) {
	t.Helper()
	browse(t, ctx, "sign in",
		chromedp.Navigate("http://"+inst.admin+"/login"),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), inst.adminToken),
		chromedp.Click(chromedp.CSS("form button.primary")),
		chromedp.WaitVisible(chromedp.CSS("nav.mainnav")),
	)
}

// openHoldsLive opens the holds queue and waits until its event stream is
// connected, so a hold created afterwards must appear without a reload.
func openHoldsLive(t *testing.T, ctx context.Context, inst *instance) {
	t.Helper()
	browse(t, ctx, "open the holds queue",
		chromedp.Navigate("http://"+inst.admin+"/holds"),
		chromedp.WaitVisible(chromedp.ID("holds")),
	)
	browserRun(t, ctx, "wait for the live stream", chromedp.Poll[bool](`document.getElementById("live-status").textContent === "Live"`))
}

// agentResult is what the agent's HTTP client got back.
type agentResult struct {
	status int
	header http.Header
	body   string
	err    error
}

// agentCall sends one request through the proxy in the background.
func agentCall(ctx context.Context, c *http.Client, method, url, body string) <-chan agentResult {
	out := make(chan agentResult, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			out <- agentResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- agentResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}()
	return out
}

func waitResult(t *testing.T, ch <-chan agentResult, within time.Duration) agentResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("agent request: %v", r.err)
		}
		return r
	case <-time.After(within):
		t.Fatalf("agent request still waiting after %s", within)
		return agentResult{}
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := browserRun(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifactsDir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// deniedBody is the proxy's 403 body (DESIGN.md §5).
type deniedBody struct {
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	ReceiptID string `json:"receipt_id"`
}

func TestDashboardApprovals(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", dashboardPolicy)
	s := inst.startSession(t, "alice", "triage-bot", "Tidy up the acme/web repository", "github:acme/web")
	agent := inst.goClient(t, s.Token, false)
	b := newBrowser(t)
	loginAdmin(t, b, inst)

	t.Run("approved in the browser, the agent gets the upstream response", func(t *testing.T) {
		openHoldsLive(t, b, inst)
		res := agentCall(t.Context(), agent, http.MethodDelete, "https://api.github.com/repos/acme/web", "")
		// The hold appears live, through the event stream.
		browse(t, b, "see the hold appear", chromedp.WaitVisible(chromedp.CSS("#holds tr.src-step_up a.row-link")))
		if n := gh.n.Load(); n != 0 {
			t.Fatalf("upstream reached while held: %d hits", n)
		}
		// innerText follows the CSS (risk levels are shown upper case).
		text := strings.ToLower(browserRun(t, b, "read the queue", chromedp.Text(chromedp.CSS("#holds"))))
		for _, want := range []string{"approval", "critical", "github · repos.delete", "acme/web", "triage-bot", "deleting a repository needs a person"} {
			if !strings.Contains(text, want) {
				t.Errorf("holds queue lacks %q:\n%s", want, text)
			}
		}
		screenshot(t, b, "holds-queue.png")

		browse(t, b, "open the hold",
			chromedp.Click(chromedp.CSS("#holds tr.src-step_up a.row-link")),
			chromedp.WaitVisible(chromedp.ID("decide-h")),
		)
		detail := browserRun(t, b, "read the hold", chromedp.Text(chromedp.ID("main")))
		for _, want := range []string{
			"Tidy up the acme/web repository", "repos.delete", "DELETE /repos/acme/web", "api.github.com",
			"deletes-need-approval", "human:alice", "agent:triage-bot", "github:acme/web", "Time left", "Approval needed (STEP_UP)",
		} {
			if !strings.Contains(detail, want) {
				t.Errorf("hold detail lacks %q", want)
			}
		}
		screenshot(t, b, "hold-detail.png")

		browse(t, b, "approve",
			chromedp.SendKeys(chromedp.ID("approve-note"), "owner asked for it"),
			chromedp.Click(chromedp.CSS("form.approve button")),
			chromedp.WaitVisible(chromedp.CSS("p.flash")),
		)
		r := waitResult(t, res, 20*time.Second)
		if r.status != http.StatusOK || !strings.Contains(r.body, `"echo"`) {
			t.Fatalf("agent after approval: got %d %s, want 200 with the upstream's answer", r.status, r.body)
		}
		if n := gh.n.Load(); n != 1 {
			t.Errorf("upstream hits after approval: got %d, want 1", n)
		}
		if flash := browserRun(t, b, "read the result", chromedp.Text(chromedp.CSS("p.flash"))); !strings.Contains(flash, "approval was recorded") {
			t.Errorf("flash after approve: %q", flash)
		}
	})

	t.Run("denied in the browser, the agent gets the 403 JSON", func(t *testing.T) {
		openHoldsLive(t, b, inst)
		res := agentCall(t.Context(), agent, http.MethodDelete, "https://api.github.com/repos/acme/old-site", "")
		browse(t, b, "open the second hold",
			chromedp.WaitVisible(chromedp.CSS("#holds tr.src-step_up a.row-link")),
			chromedp.Click(chromedp.CSS("#holds tr.src-step_up a.row-link")),
			chromedp.WaitVisible(chromedp.ID("deny-reason")),
			chromedp.SendKeys(chromedp.ID("deny-reason"), "not part of the task"),
			chromedp.Click(chromedp.CSS("form.deny button")),
			chromedp.WaitVisible(chromedp.CSS("p.flash")),
		)
		r := waitResult(t, res, 20*time.Second)
		var body deniedBody
		if r.status != http.StatusForbidden || json.Unmarshal([]byte(r.body), &body) != nil || body.Error != "denied" || !strings.Contains(body.Reason, "not part of the task") {
			t.Fatalf("agent after deny: got %d %s, want 403 JSON with error denied and the reason", r.status, r.body)
		}
		if r.header.Get("X-AARM-Receipt") == "" {
			t.Errorf("denied response lacks X-AARM-Receipt")
		}
		if n := gh.n.Load(); n != 1 {
			t.Errorf("upstream hits after deny: got %d, want still 1", n)
		}
	})

	t.Run("unanswered, the hold times out to DENY", func(t *testing.T) {
		res := agentCall(t.Context(), agent, http.MethodPatch, "https://api.github.com/repos/acme/web", `{"private":false}`)
		r := waitResult(t, res, 20*time.Second)
		var body deniedBody
		if r.status != http.StatusForbidden || json.Unmarshal([]byte(r.body), &body) != nil || body.Error != "denied" || !strings.Contains(body.Reason, "timeout") {
			t.Fatalf("agent after timeout: got %d %s, want 403 JSON with reason timeout", r.status, r.body)
		}
		if n := gh.n.Load(); n != 1 {
			t.Errorf("upstream hits after timeout: got %d, want still 1", n)
		}
		browse(t, b, "see the timed-out hold",
			chromedp.Navigate("http://"+inst.admin+"/holds?state=timed_out"),
			chromedp.WaitVisible(chromedp.CSS("#holds tr a.row-link")),
		)
		if text := browserRun(t, b, "read", chromedp.Text(chromedp.CSS("#holds"))); !strings.Contains(text, "repos.update") || !strings.Contains(text, "timed_out") {
			t.Errorf("timed-out holds list: %q", text)
		}
	})
	t.Run("blocked, sessions, receipts and policy pages", func(t *testing.T) {
		admin := "http://" + inst.admin
		browse(t, b, "blocked", chromedp.Navigate(admin+"/blocked"), chromedp.WaitVisible(chromedp.CSS("table.receipts")))
		if text := browserRun(t, b, "read blocked", chromedp.Text(chromedp.ID("main"))); !strings.Contains(text, "not part of the task") || !strings.Contains(text, "timeout") {
			t.Errorf("blocked page lacks the denial reasons:\n%s", text)
		}
		browse(t, b, "session timeline",
			chromedp.Navigate(admin+"/sessions/"+s.ID), chromedp.WaitVisible(chromedp.CSS("table.receipts")))
		if text := browserRun(t, b, "read session", chromedp.Text(chromedp.ID("main"))); !strings.Contains(text, "Tidy up the acme/web repository") || !strings.Contains(text, "repos.update") {
			t.Errorf("session page lacks the intent or the timeline:\n%s", text)
		}
		browse(t, b, "receipts", chromedp.Navigate(admin+"/receipts?session="+s.ID), chromedp.WaitVisible(chromedp.CSS("table.receipts a.row-link")))
		screenshot(t, b, "receipts.png")
		browse(t, b, "receipt detail",
			chromedp.Click(chromedp.CSS("table.receipts a.row-link")),
			chromedp.WaitVisible(chromedp.ID("checks-h")))
		checks := browserRun(t, b, "read checks", chromedp.Text(chromedp.CSS("ul.checks")))
		for _, want := range []string{"Signature: ok", "Latest checkpoint: ok", "Inclusion in the log: ok"} {
			if !strings.Contains(checks, want) {
				t.Errorf("receipt checks lack %q:\n%s", want, checks)
			}
		}
		screenshot(t, b, "receipt-detail.png")
		browse(t, b, "verify the ledger",
			chromedp.Navigate(admin+"/receipts"),
			chromedp.Click(chromedp.CSS("#ledger form button")),
			chromedp.WaitVisible(chromedp.CSS("#ledger p.okay")))
		browse(t, b, "policy", chromedp.Navigate(admin+"/policy"), chromedp.WaitVisible(chromedp.CSS("table.list")))
		if text := browserRun(t, b, "read policy", chromedp.Text(chromedp.ID("main"))); !strings.Contains(text, "e2e-dashboard v1") || !strings.Contains(text, "settings-need-approval") {
			t.Errorf("policy page:\n%s", text)
		}
	})
}

// TestDashboardUnreachableForAgent checks that the agent's credentials open
// nothing on the admin side: the proxy refuses the admin address, and the
// session token is refused as a bearer.
func TestDashboardUnreachableForAgent(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", dashboardPolicy)
	s := inst.startSession(t, "alice", "triage-bot", "Tidy up the acme/web repository")
	agent := inst.goClient(t, s.Token, false)

	res := agentCall(t.Context(), agent, http.MethodDelete, "https://api.github.com/repos/acme/web", "")
	var holds struct {
		Holds []struct{ ID string } `json:"holds"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(holds.Holds) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no pending hold appeared")
		}
		time.Sleep(50 * time.Millisecond)
		inst.api(t, http.MethodGet, "/api/v1/approvals?state=pending", nil, &holds)
	}
	id := holds.Holds[0].ID

	// Through the proxy, with the session token: refused.
	for _, path := range []string{"/api/v1/approvals/" + id + "/approve", "/holds/" + id + "/approve"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+inst.admin+path, strings.NewReader(`{"reason":"self"}`))
		req.Header.Set("Authorization", "Bearer "+inst.adminToken) // even with the admin token
		resp, err := agent.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("POST %s through the proxy: got %d, want a refusal", path, resp.StatusCode)
			}
		}
	}
	// Directly, with the session token as a bearer: 403.
	req, _ := http.NewRequest(http.MethodPost, "http://"+inst.admin+"/api/v1/approvals/"+id+"/approve", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("approve with the session token: got %d, want 403", resp.StatusCode)
	}
	// A dashboard POST without a CSRF token: refused.
	req, _ = http.NewRequest(http.MethodPost, "http://"+inst.admin+"/holds/"+id+"/approve", strings.NewReader("reason=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = (&http.Client{Transport: &http.Transport{Proxy: nil}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Errorf("CSRF-less dashboard POST: got %d, want 401 or 403", resp.StatusCode)
	}

	var h struct {
		State string `json:"state"`
	}
	inst.api(t, http.MethodGet, "/api/v1/approvals/"+id, nil, &h)
	if h.State != "pending" {
		t.Fatalf("hold after the agent's attempts: %s, want pending", h.State)
	}
	if n := gh.n.Load(); n != 0 {
		t.Fatalf("upstream reached: %d", n)
	}
	if code := inst.api(t, http.MethodPost, "/api/v1/approvals/"+id+"/deny", map[string]string{"reason": "test over"}, nil); code != http.StatusOK {
		t.Fatalf("deny: %d", code)
	}
	if r := waitResult(t, res, 20*time.Second); r.status != http.StatusForbidden {
		t.Errorf("agent after deny: got %d, want 403", r.status)
	}
}

// dashboardDeferPolicy defers a release until a change ticket is known.
const dashboardDeferPolicy = `policy:
  id: e2e-dashboard-defer
  version: "1"
  default: allow
rules:
  - id: release-needs-ticket
    match:
      tool: github
      operation: releases.create
      context: {facts.change_ticket_approved: {eq: true}}
    action: allow
    timeout: 1m
    reason: a release needs an approved change ticket
`

// TestDashboardDeferContext supplies a deferred call's missing context in
// the browser; the gate re-evaluates it and the agent's call goes through.
func TestDashboardDeferContext(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", dashboardDeferPolicy)
	s := inst.startSession(t, "alice", "release-bot", "Publish the v2.1.0 release of acme/web")
	agent := inst.goClient(t, s.Token, false)
	b := newBrowser(t)
	loginAdmin(t, b, inst)
	openHoldsLive(t, b, inst)

	res := agentCall(t.Context(), agent, http.MethodPost, "https://api.github.com/repos/acme/web/releases", `{"tag_name":"v2.1.0","name":"v2.1.0"}`)
	browse(t, b, "open the deferred hold",
		chromedp.WaitVisible(chromedp.CSS("#holds tr.src-defer a.row-link")),
		chromedp.Click(chromedp.CSS("#holds tr.src-defer a.row-link")),
		chromedp.WaitVisible(chromedp.ID("facts")),
	)
	if text := browserRun(t, b, "read the hold", chromedp.Text(chromedp.CSS(".summary"))); !strings.Contains(text, "Deferred (DEFER)") || !strings.Contains(text, "facts.change_ticket_approved") {
		t.Errorf("deferred hold summary: %q", text)
	}
	if n := gh.n.Load(); n != 0 {
		t.Fatalf("upstream reached while deferred: %d", n)
	}
	browse(t, b, "supply the context",
		chromedp.SendKeys(chromedp.ID("facts"), "change_ticket_approved: true"),
		chromedp.Click(chromedp.CSS("form.context button")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	)
	r := waitResult(t, res, 20*time.Second)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("agent after the context arrived: got %d %s, want the upstream's answer", r.status, r.body)
	}
	if n := gh.n.Load(); n != 1 {
		t.Errorf("upstream hits: got %d, want 1", n)
	}
}
