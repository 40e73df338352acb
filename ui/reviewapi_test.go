package ui

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
	"github.com/aarmproxy/aarm/rules"
)

func TestAPIApprovals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.holds.add(stepUpHold("h1"))
	e.holds.add(stepUpHold("h2"))
	done := stepUpHold("h3")
	done.State = gate.HoldTimedOut
	e.holds.add(done)
	base := e.srv.URL + "/api/v1/approvals"

	listIDs := func(q string) []string {
		t.Helper()
		resp, body := apiReq(t, "GET", base+q, testAdminToken, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET approvals%s: got %d %s", q, resp.StatusCode, body)
		}
		var l HoldList
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, h := range l.Holds {
			ids = append(ids, h.ID)
		}
		return ids
	}
	if got, want := listIDs("?state=pending"), []string{"h1", "h2"}; !cmp.Equal(got, want) {
		t.Errorf("pending: got %v, want %v", got, want)
	}
	if got, want := listIDs(""), []string{"h1", "h2", "h3"}; !cmp.Equal(got, want) {
		t.Errorf("all: got %v, want %v", got, want)
	}
	if resp, _ := apiReq(t, "GET", base+"?state=bogus", testAdminToken, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad state: got %d, want 400", resp.StatusCode)
	}

	tests := []struct {
		name, method, path, body string
		hdr                      []string
		want                     int
		wantErr                  string
	}{
		{"unknown hold", "POST", "/zzz/approve", `{}`, nil, 404, "no such hold"},
		{"deny needs reason", "POST", "/h1/deny", `{"reason":" "}`, nil, 400, "reason is required"},
		{"unknown field", "POST", "/h1/approve", `{"reasn":"x"}`, nil, 400, "unknown field"},
		{"approve with empty body", "POST", "/h1/approve", ``, []string{ApproverHeader, "bob"}, 200, ""},
		{"approve again", "POST", "/h1/approve", `{"reason":"again"}`, []string{ApproverHeader, "bob"}, 409, "already resolved"},
		{"deny resolved", "POST", "/h1/deny", `{"reason":"late"}`, nil, 409, "already resolved"},
		{"agent approving", "POST", "/h2/approve", `{}`, []string{ApproverHeader, "triage-bot"}, 403, "not allowed"},
		{"bad approver name", "POST", "/h2/approve", `{}`, []string{ApproverHeader, "bob <b>"}, 403, ApproverHeader},
		{"deny", "POST", "/h2/deny", `{"reason":"out of scope"}`, nil, 200, ""},
		{"get one", "GET", "/h2", ``, nil, 200, ""},
		{"get unknown", "GET", "/nope", ``, nil, 404, "no such hold"},
	}
	for _, tc := range tests {
		resp, body := apiReq(t, tc.method, base+tc.path, testAdminToken, tc.body, tc.hdr...)
		if resp.StatusCode != tc.want || (tc.wantErr != "" && !strings.Contains(body, tc.wantErr)) {
			t.Errorf("%s: got %d %s, want %d containing %q", tc.name, resp.StatusCode, body, tc.want, tc.wantErr)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: content type %q", tc.name, resp.Header.Get("Content-Type"))
		}
	}
	h1, _ := e.holds.Hold("h1")
	if h1.State != gate.HoldApproved || len(h1.Approvals) != 1 || h1.Approvals[0].Approver != "bob/token" {
		t.Errorf("h1: got %s %+v, want approved once by bob via token", h1.State, h1.Approvals)
	}
	h2, _ := e.holds.Hold("h2")
	if h2.State != gate.HoldDenied || h2.Approvals[0].Approver != "admin/token" {
		t.Errorf("h2: got %s %+v, want denied by admin via token", h2.State, h2.Approvals)
	}
	// A refused decision on a resolved hold reports the hold's state.
	_, body := apiReq(t, "POST", base+"/h1/approve", testAdminToken, `{}`)
	var de DecisionError
	if err := json.Unmarshal([]byte(body), &de); err != nil || de.Hold == nil || de.Hold.State != gate.HoldApproved {
		t.Errorf("409 body: got %s, want the hold in state approved", body)
	}
}

// appendReceipts writes a small history to l: two sessions, allowed and
// denied actions.
func appendReceipts(t *testing.T, l *ledger.Ledger) []*aarm.Receipt {
	t.Helper()
	mk := func(session, tool, op string, v aarm.Verdict, reason string) *aarm.Receipt {
		return &aarm.Receipt{
			Kind: aarm.KindDecision, Time: time.Now().UTC(),
			Action:    aarm.ReceiptAction{ID: "act_" + op, Tool: tool, Operation: op, Effect: aarm.EffectWrite, Method: "POST", Path: "/x", Destination: aarm.Destination{Host: "api.example.com"}},
			Requester: aarm.Identity{Human: "alice", Agent: "bot", Session: session, Delegation: []string{"human:alice", "agent:bot"}},
			Decision:  &aarm.ReceiptDecision{Verdict: v, Reason: reason, Rule: "r-" + op},
			Execution: &aarm.Execution{Status: "blocked"},
		}
	}
	rs := []*aarm.Receipt{
		mk("ses_a", "github", "issues.create", aarm.Allow, "allowed by rule"),
		mk("ses_a", "email", "send", aarm.Deny, "recipient came from an untrusted page"),
		mk("ses_b", "slack", "chat.post", aarm.Deny, "channel not in scope"),
		mk("ses_b", "github", "repos.delete", aarm.Deny, "<script>alert(1)</script> deletes are forbidden"),
	}
	for _, r := range rs {
		if _, err := l.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	return rs
}

func TestAPIReceiptsAndProofs(t *testing.T) {
	t.Parallel()
	l, pub := testLedger(t)
	rs := appendReceipts(t, l)
	e := newEnv(t, func(o *Options) { o.Receipts, o.ReceiptKeys = l, [][]byte{pub} })
	base := e.srv.URL + "/api/v1"

	list := func(q string) []string {
		t.Helper()
		resp, body := apiReq(t, "GET", base+"/receipts"+q, testAdminToken, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET receipts%s: %d %s", q, resp.StatusCode, body)
		}
		var out ReceiptList
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, r := range out.Receipts {
			ops = append(ops, r.Action.Operation)
		}
		return ops
	}
	tests := []struct {
		q    string
		want []string
	}{
		{"", []string{"repos.delete", "chat.post", "send", "issues.create"}},
		{"?order=asc&limit=2", []string{"issues.create", "send"}},
		{"?session=ses_a", []string{"send", "issues.create"}},
		{"?verdict=deny&session=ses_b", []string{"repos.delete", "chat.post"}},
		{"?since=1h&verdict=ALLOW", []string{"issues.create"}},
		{"?kind=outcome", nil},
	}
	for _, tc := range tests {
		if got := list(tc.q); !cmp.Equal(got, tc.want) {
			t.Errorf("receipts%s: got %v, want %v", tc.q, got, tc.want)
		}
	}
	for _, q := range []string{"?verdict=maybe", "?kind=x", "?limit=0", "?limit=5000", "?since=yesterday", "?order=up", "?after=-1"} {
		if resp, _ := apiReq(t, "GET", base+"/receipts"+q, testAdminToken, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("receipts%s: got %d, want 400", q, resp.StatusCode)
		}
	}

	resp, body := apiReq(t, "GET", base+"/receipts/"+rs[1].ID, testAdminToken, "")
	var got aarm.Receipt
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.ID != rs[1].ID || got.Signature == nil {
		t.Fatalf("GET receipt: got %d %s", resp.StatusCode, body)
	}
	if resp, _ := apiReq(t, "GET", base+"/receipts/nope", testAdminToken, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown receipt: got %d, want 404", resp.StatusCode)
	}

	resp, body = apiReq(t, "GET", base+"/ledger/checkpoint", testAdminToken, "")
	var cp CheckpointResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &cp) != nil {
		t.Fatalf("checkpoint: %d %s", resp.StatusCode, body)
	}
	vcp, err := ledger.VerifyCheckpoint([]byte(cp.Note), [][]byte{pub})
	if err != nil || vcp.Size != uint64(len(rs)) || hex.EncodeToString(vcp.Hash) != cp.RootHash || cp.Size != vcp.Size {
		t.Fatalf("checkpoint: %+v (verify: %v), want a verifying note of size %d matching the fields", cp, err, len(rs))
	}

	// The proof for receipt 1 verifies against the checkpoint's root.
	resp, body = apiReq(t, "GET", base+"/ledger/proof?index=1", testAdminToken, "")
	var pr ProofResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &pr) != nil || pr.Checkpoint != cp.Note || pr.TreeSize != cp.Size {
		t.Fatalf("proof: %d %s", resp.StatusCode, body)
	}
	hashes := make([][]byte, len(pr.Hashes))
	for i, h := range pr.Hashes {
		hashes[i], _ = hex.DecodeString(h)
	}
	canon, _ := ledger.CanonicalBytes(&got)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 1, pr.TreeSize, ledger.LeafHash(canon), hashes, vcp.Hash); err != nil {
		t.Errorf("inclusion proof from the API does not verify: %v", err)
	}
	for _, q := range []string{"index=x", "index=9", "index=1&size=99", "index=1&size=y"} {
		if resp, _ := apiReq(t, "GET", base+"/ledger/proof?"+q, testAdminToken, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("proof?%s: got %d, want 400", q, resp.StatusCode)
		}
	}
	if resp, _ := apiReq(t, "GET", base+"/ledger/proof?index=0&size=2", testAdminToken, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("proof against an older size: got %d, want 200", resp.StatusCode)
	}

	// A partial export is a bundle that verifies offline.
	resp, body = apiReq(t, "GET", base+"/receipts/export?session=ses_b", testAdminToken, "")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) != 3 {
		t.Fatalf("export: got %d %q with %d lines, want 200 ndjson with 2 receipts and a trailer", resp.StatusCode, resp.Header.Get("Content-Type"), len(lines))
	}
	rep, err := ledger.VerifyBundle(strings.NewReader(body), [][]byte{pub})
	if err != nil || !rep.OK() || rep.Receipts != 2 {
		t.Errorf("exported bundle: %v %v", rep, err)
	}
	if resp, _ := apiReq(t, "GET", base+"/receipts/export?verdict=nope", testAdminToken, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("export with a bad filter: got %d, want 400", resp.StatusCode)
	}
}

func TestReceiptPagesVerify(t *testing.T) {
	t.Parallel()
	l, pub := testLedger(t)
	rs := appendReceipts(t, l)
	_, otherPub, _ := ledger.GenerateSigningKey("")
	verified := false
	tests := []struct {
		name       string
		keys       [][]byte
		wantChecks []string
	}{
		{"right key", [][]byte{pub}, []string{`class="check-ok"><strong>Signature:</strong> ok`, `class="check-ok"><strong>Latest checkpoint:</strong> ok`, `class="check-ok"><strong>Inclusion in the log:</strong> ok`}},
		{"wrong key", [][]byte{otherPub}, []string{`class="check-failed"><strong>Signature:</strong> failed`, `class="check-failed"><strong>Latest checkpoint:</strong> failed`}},
		{"no key", nil, []string{`class="check-unknown"><strong>Signature:</strong> unknown`, `class="check-ok"><strong>Inclusion in the log:</strong> ok`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Receipts, o.ReceiptKeys = l, tc.keys
				o.VerifyLedger = func(context.Context) (*ledger.Report, error) {
					verified = true
					return &ledger.Report{Receipts: 4, Checkpoints: 1}, nil
				}
			})
			c, csrf := e.login(t, "", testAdminToken)
			resp, body := get(t, c, e.srv.URL+"/receipts/"+rs[2].ID)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("receipt page: %d", resp.StatusCode)
			}
			for _, w := range tc.wantChecks {
				if !strings.Contains(body, w) {
					t.Errorf("receipt page lacks %s", w)
				}
			}
			if tc.name != "right key" {
				return
			}
			_, body = get(t, c, e.srv.URL+"/receipts?session=ses_b")
			if !strings.Contains(body, "chat.post") || strings.Contains(body, "issues.create") || !strings.Contains(body, "4 receipts") {
				t.Errorf("receipts search for ses_b: wrong rows or no checkpoint")
			}
			resp, _ = postForm(t, c, e.srv.URL+"/ledger/verify", url.Values{"csrf": {csrf}})
			if resp.StatusCode != http.StatusSeeOther || !verified {
				t.Fatalf("verify ledger: got %d (ran %v), want 303 after running", resp.StatusCode, verified)
			}
			_, body = get(t, c, e.srv.URL+"/receipts")
			if !strings.Contains(body, "OK — 4 receipts, 1 checkpoints") {
				t.Errorf("receipts page does not show the verification result")
			}
			if resp, _ := get(t, c, e.srv.URL+"/receipts?verdict=nope"); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("bad search: got %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestBlockedPage(t *testing.T) {
	t.Parallel()
	l, _ := testLedger(t)
	appendReceipts(t, l)
	e := newEnv(t, func(o *Options) { o.Receipts = l })
	c, _ := e.login(t, "", testAdminToken)
	tests := []struct {
		q        string
		want     []string
		wantNone []string
	}{
		{"", []string{"repos.delete", "chat.post", "send"}, []string{"issues.create"}},
		{"?session=ses_a", []string{"send"}, []string{"chat.post", "repos.delete"}},
		{"?tool=slack", []string{"chat.post"}, []string{"repos.delete", "send"}},
		{"?q=UNTRUSTED", []string{"send"}, []string{"chat.post"}},
	}
	for _, tc := range tests {
		resp, body := get(t, c, e.srv.URL+"/blocked"+tc.q)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("blocked%s: %d", tc.q, resp.StatusCode)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, "· "+w) {
				t.Errorf("blocked%s lacks %s", tc.q, w)
			}
		}
		for _, w := range tc.wantNone {
			if strings.Contains(body, "· "+w) {
				t.Errorf("blocked%s shows %s", tc.q, w)
			}
		}
	}
	_, body := get(t, c, e.srv.URL+"/blocked")
	if strings.Contains(body, "<script>alert(1)</script>") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt; deletes are forbidden") {
		t.Errorf("blocked page does not escape the reason")
	}
}

func TestPolicyPage(t *testing.T) {
	t.Parallel()
	src := `policy:
  id: acme
  version: "7"
  description: Acme agents
rules:
  - id: deletes-need-approval
    match: {operation: "*.delete"}
    action: STEP_UP
    risk_level: critical
    approvers: [carol]
    timeout: 5m
    reason: deleting needs a person
`
	p, err := rules.ParsePolicy("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	st := rules.PolicyStatus{Ref: rules.PolicyRefStatus{ID: "acme", Version: "7", SHA256: p.SHA256()}, Source: "policy.yaml",
		LoadedAt: time.Now(), LastAttempt: time.Now(), LastError: "policy.yaml:3:1: rules[0].action: unknown verdict", Reloads: 3, Failures: 1}
	e := newEnv(t, func(o *Options) { o.Policy = fakePolicy{p: p, st: st} })
	c, _ := e.login(t, "", testAdminToken)
	resp, body := get(t, c, e.srv.URL+"/policy")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("policy page: %d", resp.StatusCode)
	}
	for _, w := range []string{"acme v7", p.SHA256(), "deletes-need-approval", "STEP_UP", "carol", "5m0s", "policy.yaml:", "unknown verdict", "3 (1 failed)", "Acme agents"} {
		if !strings.Contains(body, w) {
			t.Errorf("policy page lacks %q", w)
		}
	}
}
