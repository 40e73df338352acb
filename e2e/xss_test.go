package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestDashboardXSS sends agent parameters built to break out of HTML, of
// attributes and of templates, and checks in a real browser that the hold
// page shows them as text and that no script of theirs runs
// (DESIGN.md §7.3).
func TestDashboardXSS(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", dashboardPolicy)
	s := inst.startSession(t, "alice", "triage-bot", `File a bug <script>window.__xss="intent"</script>`)
	agent := inst.goClient(t, s.Token, false)
	b := newBrowser(t)

	// Anything that manages to run marks the page; alert() is caught too.
	if _, err := chromedp.Call(b, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__xss = ""; window.alert = function (m) { window.__xss += "alert:" + m + ";"; };`,
	}); err != nil {
		t.Fatal(err)
	}
	var dialogs atomic.Int32
	events := chromedp.Events(b, page.JavascriptDialogOpening)
	go func() {
		for _, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			_, _ = chromedp.Call(b, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	loginAdmin(t, b, inst)

	title := `<script>window.__xss+="title;"</script>`
	body := `"><img src=x onerror="window.__xss+='img;'"> <a href="javascript:alert(1)">javascript:alert(1)</a> {{.}} {{template "layout" .}} ` +
		`</textarea><svg onload=alert(2)></pre><iframe src="javascript:alert(3)"></iframe>`
	payload, _ := json.Marshal(map[string]any{"title": title, "body": body, "labels": []string{`<b onmouseover=alert(4)>bug</b>`}})
	openHoldsLive(t, b, inst)
	res := agentCall(t.Context(), agent, http.MethodPost, "https://api.github.com/repos/acme/web/issues", string(payload))
	browse(t, b, "open the hostile hold",
		chromedp.WaitVisible(chromedp.CSS("#holds tr a.row-link")),
		chromedp.Click(chromedp.CSS("#holds tr a.row-link")),
		chromedp.WaitVisible(chromedp.ID("decide-h")),
		chromedp.Sleep(500*time.Millisecond), // let anything that would run, run
	)

	ran := browserRun(t, b, "read the marker", chromedp.Evaluate[string](`window.__xss`))
	if ran != "" || dialogs.Load() != 0 {
		t.Errorf("agent-supplied script ran: marker %q, %d dialogs", ran, dialogs.Load())
	}
	counts := browserRun(t, b, "count elements", chromedp.Evaluate[map[string]int](`({
		img: document.querySelectorAll("img").length,
		svg: document.querySelectorAll("svg").length,
		iframe: document.querySelectorAll("iframe").length,
		scripts: document.scripts.length,
		jsLinks: Array.from(document.querySelectorAll("a[href]")).filter(a => a.getAttribute("href").trim().toLowerCase().startsWith("javascript:")).length,
		handlers: Array.from(document.querySelectorAll("*")).filter(e => Array.from(e.attributes).some(a => a.name.startsWith("on"))).length
	})`))
	want := map[string]int{"img": 0, "svg": 0, "iframe": 0, "scripts": 1, "jsLinks": 0, "handlers": 0}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("elements on the hold page: %s = %d, want %d", k, counts[k], v)
		}
	}
	text := browserRun(t, b, "read the page text", chromedp.Text(chromedp.ID("main")))
	for _, shown := range []string{title, `"><img src=x onerror=`, `javascript:alert(1)`, `{{.}}`, `{{template "layout" .}}`, `<svg onload=alert(2)>`, `<script>window.__xss="intent"</script>`} {
		if !strings.Contains(text, shown) {
			t.Errorf("the page does not show %q as text", shown)
		}
	}
	screenshot(t, b, "hold-detail-hostile.png")

	// The holds queue, where the title is shown too, stays inert as well.
	browse(t, b, "back to the queue", chromedp.Navigate("http://"+inst.admin+"/holds"), chromedp.WaitVisible(chromedp.ID("holds")), chromedp.Sleep(300*time.Millisecond))
	if ran := browserRun(t, b, "read the marker", chromedp.Evaluate[string](`window.__xss`)); ran != "" {
		t.Errorf("agent-supplied script ran on the queue: %q", ran)
	}

	var holds struct {
		Holds []struct{ ID string } `json:"holds"`
	}
	inst.api(t, http.MethodGet, "/api/v1/approvals?state=pending", nil, &holds)
	for _, h := range holds.Holds {
		inst.api(t, http.MethodPost, "/api/v1/approvals/"+h.ID+"/deny", map[string]string{"reason": "test over"}, nil)
	}
	if r := waitResult(t, res, 20*time.Second); r.status != http.StatusForbidden {
		t.Errorf("agent after deny: got %d, want 403", r.status)
	}
	if n := gh.n.Load(); n != 0 {
		t.Errorf("upstream reached: %d hits", n)
	}
}
