package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type receiptJSON struct {
	ID        string `json:"receipt_id"`
	Kind      string `json:"kind"`
	Requester struct {
		Human    string   `json:"human"`
		Agent    string   `json:"agent"`
		Session  string   `json:"session"`
		Scope    []string `json:"scope"`
		Verified bool     `json:"verified"`
	} `json:"requester"`
	Action struct {
		ID        string `json:"action_id"`
		Tool      string `json:"tool"`
		Operation string `json:"operation"`
	} `json:"action"`
	Decision *struct {
		Verdict string `json:"verdict"`
		Policy  struct {
			SHA256 string `json:"sha256"`
		} `json:"policy"`
	} `json:"decision"`
	Execution *struct {
		Status     string `json:"status"`
		StatusCode int    `json:"status_code"`
	} `json:"execution"`
	ContextHash string `json:"context_hash"`
	Signature   *struct {
		Algorithm, KeyID, Value string
	} `json:"signature"`
}

// TestReceiptsAttributedAndVerifiable drives allowed, denied and modified
// requests from two sessions of different principals, then checks each got
// decision and outcome receipts naming the right identity, and that an
// exported bundle verifies offline with only the public key.
func TestReceiptsAttributedAndVerifiable(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", e2ePolicy)
	alice := inst.startSession(t, "alice", "triage-bot", "Triage and label issues in acme/web", "github:acme/web")
	bob := inst.startSession(t, "bob", "release-bot", "Read the acme/api repository")

	send := func(s session, method, url, body string) *http.Response {
		t.Helper()
		c := inst.goClient(t, s.Token, false)
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	allowed := send(alice, http.MethodGet, "https://api.github.com/repos/acme/web/issues/1", "")
	denied := send(alice, http.MethodDelete, "https://api.github.com/repos/acme/web", "")
	modified := send(alice, http.MethodPost, "https://api.github.com/repos/acme/web/issues", `{"title":"x","assignees":["eve"]}`)
	bobs := send(bob, http.MethodGet, "https://api.github.com/repos/acme/api", "")
	if allowed.StatusCode != 200 || denied.StatusCode != 403 || modified.StatusCode != 200 || bobs.StatusCode != 200 {
		t.Fatalf("statuses: %d %d %d %d", allowed.StatusCode, denied.StatusCode, modified.StatusCode, bobs.StatusCode)
	}

	// Outcome receipts follow the response; wait for them.
	var list struct {
		Receipts []receiptJSON `json:"receipts"`
	}
	waitFor(t, 10*time.Second, "outcome receipts", func() bool {
		inst.api(t, http.MethodGet, "/api/v1/receipts?session="+alice.ID+"&limit=100", nil, &list)
		n := 0
		for _, r := range list.Receipts {
			if r.Kind == "outcome" {
				n++
			}
		}
		return n == 2
	})
	byVerdict := map[string][]string{}
	for _, r := range list.Receipts {
		if r.Requester.Human != "alice" || r.Requester.Agent != "triage-bot" || r.Requester.Session != alice.ID ||
			len(r.Requester.Scope) != 1 || r.Requester.Scope[0] != "github:acme/web" || !r.Requester.Verified {
			t.Errorf("receipt %s: requester %+v, want alice/triage-bot/%s/[github:acme/web] verified", r.ID, r.Requester, alice.ID)
		}
		if r.Signature == nil || r.Signature.Value == "" || r.Decision == nil || r.Decision.Policy.SHA256 == "" {
			t.Errorf("receipt %s: unsigned or without the policy hash", r.ID)
		}
		byVerdict[r.Kind+":"+r.Decision.Verdict] = append(byVerdict[r.Kind+":"+r.Decision.Verdict], r.Action.Operation)
		if r.Kind == "decision" && r.ContextHash == "" {
			t.Errorf("decision receipt %s without a context hash", r.ID)
		}
	}
	for _, want := range []string{"decision:ALLOW", "outcome:ALLOW", "decision:DENY", "decision:MODIFY", "outcome:MODIFY"} {
		if len(byVerdict[want]) != 1 {
			t.Errorf("alice's receipts %v: want exactly one %s", byVerdict, want)
		}
	}
	// Bob's receipts are his alone.
	var bobList struct {
		Receipts []receiptJSON `json:"receipts"`
	}
	inst.api(t, http.MethodGet, "/api/v1/receipts?session="+bob.ID, nil, &bobList)
	if len(bobList.Receipts) == 0 {
		t.Fatal("no receipts for bob")
	}
	for _, r := range bobList.Receipts {
		if r.Requester.Human != "bob" || r.Requester.Agent != "release-bot" {
			t.Errorf("bob's receipt %s attributed to %+v", r.ID, r.Requester)
		}
	}

	// Export a bundle through the CLI and verify it with only the public key.
	env := []string{"AARM_HOME=" + inst.dir}
	out, code := aarmCmd(t, env, "receipts", "export")
	if code != 0 {
		t.Fatalf("receipts export: exit %d\n%s", code, out)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.jsonl")
	os.WriteFile(bundle, []byte(out), 0o600)
	pub := filepath.Join(t.TempDir(), "pub.pem")
	b, _ := os.ReadFile(filepath.Join(inst.dir, "signing-pub.pem"))
	os.WriteFile(pub, b, 0o600)
	if out, code := aarmCmd(t, nil, "verify", "--bundle", bundle, "--pubkey", pub); code != 0 || !strings.HasPrefix(out, "OK") {
		t.Errorf("verify bundle: exit %d\n%s", code, out)
	}
	// A tampered bundle fails, naming where.
	os.WriteFile(bundle, []byte(strings.Replace(string(must(os.ReadFile(bundle))), `"alice"`, `"mallory"`, 1)), 0o600)
	if out, code := aarmCmd(t, nil, "verify", "--bundle", bundle, "--pubkey", pub); code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "index") {
		t.Errorf("verify tampered bundle: exit %d\n%s", code, out)
	}

	// The CLI lists and shows receipts too.
	if out, code := aarmCmd(t, env, "receipts", "list", "--session", bob.ID); code != 0 || !strings.Contains(out, "release-bot") {
		t.Errorf("receipts list: exit %d\n%s", code, out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
