package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const e2ePolicy = `
policy:
  id: e2e
  version: "1"
  default: allow
rules:
  - id: no-repo-delete
    match: {tool: github, operation: repos.delete}
    action: deny
    classification: forbidden
    reason: agents never delete repositories
  - id: triage-label
    match: {tool: github, operation: issues.create}
    action: modify
    modifications:
      - {kind: body.set, path: labels, value: [triage]}
      - {kind: body.delete, path: assignees}
      - {kind: header.delete, path: X-Debug}
    reason: new issues are labelled for triage and never assigned by agents
`

func TestPolicyEnforcementAndReload(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", e2ePolicy)
	s := inst.startSession(t, "alice", "triage-bot", "Triage and label issues in acme/web")
	c := inst.goClient(t, s.Token, false)

	t.Run("deny leaves the upstream untouched", func(t *testing.T) {
		before := gh.n.Load()
		req, _ := http.NewRequest(http.MethodDelete, "https://api.github.com/repos/acme/web", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertDenied(t, resp, data, http.StatusForbidden, "never delete repositories")
		var body struct {
			Decision struct {
				Rule           string `json:"rule"`
				Classification string `json:"classification"`
				Policy         struct{ ID, SHA256 string }
			} `json:"decision"`
		}
		json.Unmarshal(data, &body)
		if body.Decision.Rule != "no-repo-delete" || body.Decision.Classification != "forbidden" || body.Decision.Policy.ID != "e2e" || body.Decision.Policy.SHA256 == "" {
			t.Errorf("decision: got %+v", body.Decision)
		}
		if gh.n.Load() != before {
			t.Errorf("denied request reached the upstream")
		}
	})

	t.Run("modify reaches the upstream edited", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "https://api.github.com/repos/acme/web/issues",
			strings.NewReader(`{"title":"Crash on login","assignees":["mallory"],"labels":["bug"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Debug", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		hits := gh.Hits()
		last := hits[len(hits)-1]
		var got map[string]any
		if err := json.Unmarshal(last.Body, &got); err != nil {
			t.Fatalf("upstream body %q: %v", last.Body, err)
		}
		if _, ok := got["assignees"]; ok || got["title"] != "Crash on login" {
			t.Errorf("upstream got %s, want assignees removed and title kept", last.Body)
		}
		if labels, _ := got["labels"].([]any); len(labels) != 1 || labels[0] != "triage" {
			t.Errorf("upstream labels: got %v, want [triage]", got["labels"])
		}
		if last.Header.Get("X-Debug") != "" {
			t.Errorf("X-Debug header was not removed")
		}
		// The receipt-bound decision says what changed.
		rid := resp.Header.Get("X-AARM-Receipt")
		var rec struct {
			Decision struct {
				Verdict       string           `json:"verdict"`
				Reason        string           `json:"reason"`
				Modifications []map[string]any `json:"modifications"`
			} `json:"decision"`
		}
		if rid == "" {
			d := inst.waitDecision(t, func(d map[string]any) bool { return d["verdict"] == "MODIFY" })
			rid, _ = d["receipt"].(string)
		}
		if code := inst.api(t, http.MethodGet, "/api/v1/receipts/"+rid, nil, &rec); code != http.StatusOK {
			t.Fatalf("receipt %s: status %d", rid, code)
		}
		if rec.Decision.Verdict != "MODIFY" || len(rec.Decision.Modifications) != 3 || !strings.Contains(rec.Decision.Reason, "modified") {
			t.Errorf("receipt decision: got %+v", rec.Decision)
		}
	})

	t.Run("edited policy takes effect without restart; a broken one does not", func(t *testing.T) {
		path := filepath.Join(inst.dir, "policy.yaml")
		edited := strings.Replace(e2ePolicy, `version: "1"`, `version: "2"`, 1) + `
  - id: no-comments
    match: {tool: github, operation: issues.createComment}
    action: deny
    reason: comments are frozen
`
		if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
			t.Fatal(err)
		}
		comment := func() int {
			resp, err := c.Post("https://api.github.com/repos/acme/web/issues/1/comments", "application/json", strings.NewReader(`{"body":"triaged"}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		waitFor(t, 10*time.Second, "the edited policy", func() bool { return comment() == http.StatusForbidden })

		if err := os.WriteFile(path, []byte("policy: {id: broken\nrules: [\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the reload failure on /metrics", func() bool {
			return strings.Contains(inst.metrics(t), "aarm_policy_last_reload_ok 0")
		})
		if code := comment(); code != http.StatusForbidden {
			t.Errorf("after a broken edit: got %d, want the last good policy (403) still in force", code)
		}
		out, code := aarmCmd(t, nil, "policy", "lint", path)
		if code != 1 || !strings.Contains(out, "policy.yaml:") {
			t.Errorf("policy lint of the broken file: exit %d\n%s", code, out)
		}
	})
}

func (in *instance) metrics(t testing.TB) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+in.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+in.adminToken)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
