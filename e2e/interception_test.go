package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// interceptionConfig denies example.org by host list, so a denied request has
// a stand-in that would count a hit if it leaked.
const interceptionConfig = `hosts:
  deny: [example.org]
limits:
  max_body: 64KiB
  max_expansion_ratio: 20
`

func setupInterception(t *testing.T) (*instance, *upstream, *upstream, session) {
	t.Helper()
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	ex := newUpstream(t, ca, "example.org")
	inst := startAarm(t, ca, []*upstream{gh, ex}, interceptionConfig, "")
	s := inst.startSession(t, "alice", "triage-bot", "Label my open GitHub issues in acme/web", "github:acme/web")
	return inst, gh, ex, s
}

func TestInterception(t *testing.T) {
	inst, gh, ex, s := setupInterception(t)
	body := `{"title":"Flaky test","body":"The login test fails on CI","labels":["bug"]}`

	t.Run("curl allowed reaches upstream with body intact", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Fatal("curl not installed: run scripts/install-test-deps.sh")
		}
		before := gh.n.Load()
		env := append(cleanEnv(), s.envList()...)
		out, code, err := runCmd(t.Context(), env, "curl", "-sS", "--fail-with-body", "-X", "POST",
			"-H", "Content-Type: application/json", "--data", body, "https://api.github.com/repos/acme/web/issues")
		if err != nil || code != 0 {
			t.Fatalf("curl: exit %d, %v\n%s", code, err, out)
		}
		if gh.n.Load() != before+1 {
			t.Fatalf("upstream hits: got %d, want %d", gh.n.Load(), before+1)
		}
		last := gh.Hits()[len(gh.Hits())-1]
		if string(last.Body) != body || last.Method != "POST" || last.Path != "/repos/acme/web/issues" {
			t.Errorf("upstream got %s %s %q, want POST /repos/acme/web/issues %q", last.Method, last.Path, last.Body, body)
		}
		if last.Header.Get("Proxy-Authorization") != "" {
			t.Errorf("Proxy-Authorization leaked upstream")
		}
		if !strings.Contains(out, `"echo"`) {
			t.Errorf("curl output %q lacks the upstream's echo", out)
		}
		d := inst.waitDecision(t, func(d map[string]any) bool { return d["path"] == "/repos/acme/web/issues" })
		if d["verdict"] != "ALLOW" || d["session"] != s.ID || d["agent"] != "triage-bot" || d["tool"] != "github" || d["operation"] != "issues.create" || d["target"] != "acme/web" {
			t.Errorf("decision line: got %v", d)
		}
		// The gate's action, as its receipt records it, carries the params.
		var rec struct {
			Action struct {
				Tool, Operation, Target string
				Parameters              map[string]any `json:"parameters"`
			} `json:"action"`
		}
		inst.api(t, http.MethodGet, "/api/v1/receipts/"+d["receipt"].(string), nil, &rec)
		if rec.Action.Parameters["title"] != "Flaky test" || rec.Action.Parameters["body"] != "The login test fails on CI" || rec.Action.Target != "acme/web" {
			t.Errorf("receipt action: got %+v", rec.Action)
		}
	})

	t.Run("python urllib allowed", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Fatal("python3 not installed: run scripts/install-test-deps.sh")
		}
		before := gh.n.Load()
		script := `import json, urllib.request
req = urllib.request.Request("https://api.github.com/repos/acme/web/issues/1/labels", data=b'{"labels":["bug"]}', method="POST", headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=20) as r:
    print(r.status, json.load(r)["echo"])
`
		env := append(cleanEnv(), s.envList()...)
		out, code, err := runCmd(t.Context(), env, py, "-c", script)
		if err != nil || code != 0 {
			t.Fatalf("python: exit %d, %v\n%s", code, err, out)
		}
		if !strings.Contains(out, `200 {"labels":["bug"]}`) {
			t.Errorf("python output: got %q", out)
		}
		if gh.n.Load() != before+1 {
			t.Errorf("upstream hits: got %d, want %d", gh.n.Load(), before+1)
		}
	})

	t.Run("go http1 and http2 allowed", func(t *testing.T) {
		for _, h2 := range []bool{false, true} {
			c := inst.goClient(t, s.Token, h2)
			resp, err := c.Post("https://api.github.com/repos/acme/web/issues", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatalf("h2=%v: %v", h2, err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(data), "Flaky test") {
				t.Errorf("h2=%v: got %d %s", h2, resp.StatusCode, data)
			}
			if h2 && resp.ProtoMajor != 2 {
				t.Errorf("h2 client: got protocol %s, want HTTP/2", resp.Proto)
			}
		}
	})

	t.Run("denied never reaches upstream", func(t *testing.T) {
		c := inst.goClient(t, s.Token, false)
		resp, err := c.Post("https://example.org/upload", "text/plain", strings.NewReader("data"))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusForbidden, "hosts.deny")
		if n := ex.n.Load(); n != 0 {
			t.Errorf("denied host reached %d times", n)
		}
	})

	t.Run("no token and bad token get 407 naming the fix", func(t *testing.T) {
		for name, tok := range map[string]string{"none": "", "forged": "aarm1.AAAA.BBBB", "garbage": "hunter2"} {
			c := inst.goClient(t, tok, false)
			_, err := c.Get("https://api.github.com/user")
			if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
				t.Errorf("%s: got %v, want a 407 CONNECT refusal", name, err)
			}
			// Plain HTTP shows the 407 body to the client.
			resp, err := c.Get("http://api.github.com/user")
			if err != nil {
				t.Fatalf("%s plain: %v", name, err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusProxyAuthRequired || !strings.Contains(string(data), "session") {
				t.Errorf("%s plain: got %d %s, want 407 with a JSON body naming the fix", name, resp.StatusCode, data)
			}
		}
		if n := ex.n.Load(); n != 0 {
			t.Errorf("unauthenticated requests reached upstream %d times", n)
		}
	})

	t.Run("host mismatch inside tunnel is refused", func(t *testing.T) {
		before := gh.n.Load() + ex.n.Load()
		c := inst.goClient(t, s.Token, false)
		req, _ := http.NewRequest(http.MethodGet, "https://api.github.com/user", nil)
		req.Host = "example.org"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusForbidden, "")
		if after := gh.n.Load() + ex.n.Load(); after != before {
			t.Errorf("host-mismatched request reached an upstream")
		}
	})

	t.Run("admin API through the proxy is refused", func(t *testing.T) {
		var before, after struct {
			Sessions []any `json:"sessions"`
		}
		inst.api(t, http.MethodGet, "/api/v1/sessions", nil, &before)
		c := inst.goClient(t, s.Token, false)
		// Plain HTTP to the admin address: the gate's refusal, with a receipt.
		resp, err := c.Post("http://"+inst.admin+"/api/v1/sessions", "application/json", strings.NewReader(`{"agent":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusForbidden, "admin address")
		// A CONNECT tunnel to it is refused before any TLS.
		if _, err := c.Get("https://" + inst.admin + "/api/v1/sessions"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("CONNECT to the admin address: got %v, want a 403 refusal", err)
		}
		// And the proxy's own address.
		resp, err = c.Get("http://" + inst.proxy + "/")
		if err != nil {
			t.Fatal(err)
		}
		data, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusForbidden, "own listen")
		inst.api(t, http.MethodGet, "/api/v1/sessions", nil, &after)
		if len(after.Sessions) != len(before.Sessions) {
			t.Errorf("a session was created through the proxy: %d sessions, was %d", len(after.Sessions), len(before.Sessions))
		}
	})

	t.Run("body over the limit is denied before upstream", func(t *testing.T) {
		before := gh.n.Load()
		c := inst.goClient(t, s.Token, false)
		big := `{"body":"` + strings.Repeat("x", 100<<10) + `"}`
		resp, err := c.Post("https://api.github.com/repos/acme/web/issues", "application/json", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusRequestEntityTooLarge, "")
		if gh.n.Load() != before {
			t.Errorf("over-limit body reached upstream")
		}
	})

	t.Run("gzip bomb is denied", func(t *testing.T) {
		before := gh.n.Load()
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zeros := make([]byte, 1<<20)
		for range 8 {
			zw.Write(zeros)
		}
		zw.Close()
		c := inst.goClient(t, s.Token, false)
		req, _ := http.NewRequest(http.MethodPost, "https://api.github.com/repos/acme/web/issues", bytes.NewReader(buf.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusRequestEntityTooLarge, "inspect")
		if gh.n.Load() != before {
			t.Errorf("gzip bomb reached upstream")
		}
	})
}

// assertDenied checks the 403-style JSON of DESIGN.md §5.
func assertDenied(t *testing.T, resp *http.Response, data []byte, status int, reasonContains string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("got status %d, want %d (body %s)", resp.StatusCode, status, data)
	}
	var body struct {
		Error     string         `json:"error"`
		Reason    string         `json:"reason"`
		ReceiptID string         `json:"receipt_id"`
		Decision  map[string]any `json:"decision"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatalf("denial body %q is not JSON: %v", data, err)
	}
	if body.Error != "denied" || body.Reason == "" || body.Decision["verdict"] != "DENY" {
		t.Errorf("denial body: got %s", data)
	}
	if !strings.Contains(body.Reason, reasonContains) {
		t.Errorf("reason %q does not mention %q", body.Reason, reasonContains)
	}
	if body.ReceiptID == "" || resp.Header.Get("X-AARM-Receipt") != body.ReceiptID {
		t.Errorf("receipt id: body %q, header %q; want both set and equal", body.ReceiptID, resp.Header.Get("X-AARM-Receipt"))
	}
}

func TestExecRunsCommandInSession(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", "")
	env := append(cleanEnv(), "AARM_HOME="+inst.dir)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, code, err := runCmd(ctx, env, aarmBin, "exec", "--user", "alice", "--agent", "curl-bot", "--intent", "read my profile",
		"--", "curl", "-sS", "--fail", "https://api.github.com/user")
	if err != nil || code != 0 {
		t.Fatalf("aarm exec curl: exit %d, %v\n%s", code, err, out)
	}
	if gh.n.Load() != 1 {
		t.Errorf("upstream hits: got %d, want 1", gh.n.Load())
	}
	d := inst.waitDecision(t, func(d map[string]any) bool { return d["agent"] == "curl-bot" })
	if d["verdict"] != "ALLOW" || d["human"] != "alice" {
		t.Errorf("decision: got %v", d)
	}

	// The command's own exit code comes back.
	out, code, err = runCmd(ctx, env, aarmBin, "exec", "--agent", "curl-bot", "--intent", "x", "--", "sh", "-c", "exit 7")
	if err != nil || code != 7 {
		t.Errorf("aarm exec sh -c 'exit 7': got exit %d (%v), want 7\n%s", code, err, out)
	}
	// The session ended with the command.
	var list struct {
		Sessions []struct {
			Agent   string `json:"agent"`
			EndedAt string `json:"ended_at"`
		} `json:"sessions"`
	}
	inst.api(t, http.MethodGet, "/api/v1/sessions", nil, &list)
	for _, s := range list.Sessions {
		if s.Agent == "curl-bot" && s.EndedAt == "" {
			t.Errorf("session of a finished aarm exec is still open")
		}
	}
}

func TestInitIsIdempotentAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	out, code := aarmCmd(t, nil, "init", "--dir", dir)
	if code != 0 || !strings.Contains(out, "created ca.pem") {
		t.Fatalf("first init: exit %d\n%s", code, out)
	}
	before := map[string][]byte{}
	for _, f := range []string{"ca.pem", "ca-key.pem", "signing-key.pem", "admin-token", "aarm.yaml", "policy.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("init did not create %s: %v", f, err)
		}
		before[f] = b
	}
	for f, want := range map[string]os.FileMode{".": 0o700, "ca-key.pem": 0o600, "signing-key.pem": 0o600, "admin-token": 0o600} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", f, got, want)
		}
	}
	out, code = aarmCmd(t, nil, "init", "--dir", dir)
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("second init: exit %d\n%s", code, out)
	}
	for f, b := range before {
		now, _ := os.ReadFile(filepath.Join(dir, f))
		if !bytes.Equal(now, b) {
			t.Errorf("second init changed %s", f)
		}
	}
	if out, code := aarmCmd(t, nil, "ca", "path", "--dir", dir); code != 0 || strings.TrimSpace(out) != filepath.Join(dir, "ca.pem") {
		t.Errorf("ca path: exit %d %q", code, out)
	}
}

func TestRunStartupErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty")
	out, code := aarmCmd(t, nil, "run", "--dir", dir, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if code != 1 || !strings.Contains(out, "aarm init") {
		t.Errorf("run without init: exit %d %q, want 1 and a hint to run aarm init", code, out)
	}
	if _, code := aarmCmd(t, nil, "nosuchcommand"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	dir = filepath.Join(t.TempDir(), "d")
	aarmCmd(t, nil, "init", "--dir", dir)
	os.WriteFile(filepath.Join(dir, "aarm.yaml"), []byte("version: 1\nlimits:\n  max_bdy: 1\n"), 0o600)
	out, code = aarmCmd(t, nil, "run", "--dir", dir)
	if code != 1 || !strings.Contains(out, "aarm.yaml:3") || !strings.Contains(out, "max_bdy") {
		t.Errorf("bad config: exit %d %q, want file:line and the field", code, out)
	}
}
