package ui

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
)

// xssPayloads are agent-supplied strings that must reach the reviewer as text.
var xssPayloads = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`javascript:alert(1)`,
	`{{.}}`,
	`{{template "layout" .}}`,
	`'><svg onload=alert(1)>`,
	`</textarea><script>alert(2)</script>`,
	`</pre><iframe src=javascript:alert(3)>`,
}

// hostileHold puts payload into every agent-controlled field of a hold.
func hostileHold(id, payload string) *gate.Hold {
	h := stepUpHold(id)
	h.Action.Tool, h.Action.Operation, h.Action.Target = payload, payload, payload
	h.Action.Path, h.Action.Method, h.Action.Mapping = "/"+payload, payload, payload
	h.Action.Destination.Host = payload
	h.Action.Parameters = map[string]any{
		"body": payload, payload: "key", "url": "javascript:alert(1)",
		"nested": map[string]any{"html": payload, "list": []any{payload, 1.5}},
	}
	h.Action.Entities = []aarm.Entity{{Kind: aarm.EntityURL, Value: payload, Param: payload}}
	h.Action.Identity.Agent, h.Action.Identity.Human, h.Action.Identity.Session = payload, payload, payload
	h.Action.Identity.Delegation, h.Action.Identity.Scope = []string{"human:" + payload}, []string{payload}
	h.Intent, h.Decision.Reason, h.Decision.Rule = payload, payload, payload
	h.Decision.Approvers = []string{"admin", payload}
	h.Context = map[string]any{"prior_actions": []any{map[string]any{"tool": payload, "target": payload}}, "note": payload}
	h.Signals = map[string]any{"dlp": payload, "taint": []any{payload}, "provenance": map[string]any{payload: payload}}
	h.Approvals = []aarm.Approval{{Approver: payload, Decision: aarm.Allow, Reason: payload, Time: time.Now()}}
	h.Required = 2
	h.ReceiptID = payload
	return h
}

// inertProblems parses a page and lists anything that could run script: a
// script element other than the dashboard's own file, event-handler
// attributes, script-capable elements, or links and form targets that are
// not local paths.
func inertProblems(page string) []string {
	var out []string
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				out = append(out, fmt.Sprintf("tokenizer: %v", z.Err()))
			}
			return out
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		switch tok.Data {
		case "img", "svg", "iframe", "object", "embed", "base", "style":
			out = append(out, fmt.Sprintf("unexpected <%s> element: %s", tok.Data, tok.String()))
		case "script":
			if len(tok.Attr) == 0 || tok.Attr[0].Key != "src" || tok.Attr[0].Val != "/static/app.js" {
				out = append(out, fmt.Sprintf("foreign script element: %s", tok.String()))
			}
		}
		for _, a := range tok.Attr {
			if strings.HasPrefix(a.Key, "on") || a.Key == "style" || a.Key == "srcdoc" {
				out = append(out, fmt.Sprintf("attribute %s on <%s>", a.Key, tok.Data))
			}
			switch a.Key {
			case "href", "src", "action", "data-live", "formaction":
				if !strings.HasPrefix(a.Val, "/") && !strings.HasPrefix(a.Val, "#") || strings.HasPrefix(a.Val, "//") {
					out = append(out, fmt.Sprintf("<%s %s=%q> is not a local path", tok.Data, a.Key, a.Val))
				}
			}
		}
	}
}

func checkInert(t *testing.T, where, page string) {
	t.Helper()
	for _, p := range inertProblems(page) {
		t.Errorf("%s: %s", where, p)
	}
}

func TestAgentStringsRenderEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for i, p := range xssPayloads {
		e.holds.add(hostileHold(fmt.Sprintf("h%d", i), p))
	}
	c, _ := e.login(t, "", testAdminToken)
	pages := []string{"/holds", "/holds/list", "/holds?state=all"}
	for i := range xssPayloads {
		pages = append(pages, fmt.Sprintf("/holds/h%d", i))
	}
	for _, p := range pages {
		resp, body := get(t, c, e.srv.URL+p)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		checkInert(t, p, body)
		for _, raw := range []string{"<script>alert", "<img src=x", "<svg", "<iframe", `href="javascript:`} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: raw %q in the page", p, raw)
			}
		}
	}
	// The reviewer sees each payload, as text.
	_, body := get(t, c, e.srv.URL+"/holds/h0")
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "javascript:alert(1)"} {
		if !strings.Contains(body, want) {
			t.Errorf("hold page does not show %q as text", want)
		}
	}
	_, body = get(t, c, e.srv.URL+"/holds/h1")
	if !strings.Contains(body, "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("hold page does not show the attribute-breaking payload as text")
	}
	_, body = get(t, c, e.srv.URL+"/holds/h3")
	if !strings.Contains(body, "{{.}}") {
		t.Errorf("template syntax from the agent should appear literally")
	}
	// The session link is escaped inside the URL, never a second attribute.
	_, body = get(t, c, e.srv.URL+"/holds/h1")
	if !strings.Contains(body, `href="/sessions/%22%3e%3cimg%20src=x%20onerror=alert%281%29%3e"`) {
		t.Errorf("session link is not URL-escaped")
	}
}

func FuzzHoldPageIsInert(f *testing.F) {
	for _, p := range xssPayloads {
		f.Add(p)
	}
	f.Add("\x00<\u2028script>")
	d, err := newDashboard(Options{AdminToken: testAdminToken})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		v := d.holdDetail(hostileHold("h", payload))
		var sb strings.Builder
		p := page{Title: payload, Who: gate.Approver{Name: "admin"}, CSRF: "c", Body: v, Now: time.Now()}
		if err := d.pages["hold"].ExecuteTemplate(&sb, "layout", p); err != nil {
			t.Fatalf("render: %v", err)
		}
		checkInert(t, "hold page", sb.String())
		sb.Reset()
		if err := d.pages["holds"].ExecuteTemplate(&sb, "layout", page{Body: holdsView{Enabled: true, State: "pending", Rows: []holdRow{{Hold: hostileHold("h", payload)}}}}); err != nil {
			t.Fatalf("render: %v", err)
		}
		checkInert(t, "holds page", sb.String())
	})
}

// TestInertProblemsCatches keeps the checker honest: each of these pages must
// fail it.
func TestInertProblemsCatches(t *testing.T) {
	t.Parallel()
	bad := []string{
		`<p><script>alert(1)</script></p>`,
		`<img src=x onerror=alert(1)>`,
		`<a href="javascript:alert(1)">x</a>`,
		`<p onclick="x()">x</p>`,
		`<form action="https://evil.example/"></form>`,
		`<a href="//evil.example/">x</a>`,
		`<div style="background:url(x)">`,
	}
	for _, b := range bad {
		if len(inertProblems(b)) == 0 {
			t.Errorf("inertProblems accepted %s", b)
		}
	}
	if p := inertProblems(`<p><script src="/static/app.js" defer></script><a href="/holds">x</a></p>`); len(p) != 0 {
		t.Errorf("inertProblems refused a clean page: %v", p)
	}
}
