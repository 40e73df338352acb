package rules

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/aarmproxy/aarm"
)

// TestEnforcementContract shows the contract the gate and proxy build on:
// DENY never reaches the upstream; MODIFY reaches it edited, with a
// Content-Length that matches the new body; an edit that cannot apply is
// a DENY, not a pass.
func TestEnforcementContract(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]any{"body": string(body), "cc": r.Header.Get("Cc"), "content_length": r.ContentLength, "query": r.URL.RawQuery})
	}))
	t.Cleanup(upstream.Close)

	p := mustPolicy(t, `policy: {id: enforce, version: "1", default: deny}
rules:
  - id: cap-and-strip
    match: {tool: api, operation: send}
    action: modify
    modifications:
      - {kind: body.cap, path: recipients, value: 2}
      - {kind: header.delete, path: Cc}
      - {kind: query.delete, path: debug}
  - id: allow-read
    match: {tool: api, operation: read}
    action: allow
`)
	// enforce is what the proxy does with a decision.
	enforce := func(op string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, upstream.URL+"/x?debug=1&a=b", bytes.NewReader(body))
		req.Header.Set("Cc", "boss@rival.example")
		req.Header.Set("Content-Type", "application/json")
		d, _ := Evaluate(p, Input{Action: aarm.Action{Tool: "api", Operation: op}})
		switch d.Verdict {
		case aarm.Allow:
		case aarm.Modify:
			edited, _, err := ApplyModifications(d.Modifications, EditRequest{URL: req.URL, Header: req.Header, Body: body, ContentType: "application/json"}, nil)
			if err != nil {
				return http.StatusForbidden, nil
			}
			req, _ = http.NewRequest(http.MethodPost, edited.URL.String(), bytes.NewReader(edited.Body))
			req.Header = edited.Header
			req.ContentLength = int64(len(edited.Body))
			req.Header.Set("Content-Length", strconv.Itoa(len(edited.Body)))
		default:
			return http.StatusForbidden, nil
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var echo map[string]any
		json.NewDecoder(resp.Body).Decode(&echo)
		return resp.StatusCode, echo
	}

	if code, _ := enforce("delete", []byte(`{}`)); code != http.StatusForbidden || hits.Load() != 0 {
		t.Fatalf("DENY: got status %d and %d upstream hits, want 403 and 0", code, hits.Load())
	}
	if code, _ := enforce("send", []byte(`not json`)); code != http.StatusForbidden || hits.Load() != 0 {
		t.Fatalf("MODIFY that cannot apply: got status %d and %d upstream hits, want 403 and 0", code, hits.Load())
	}
	code, echo := enforce("send", []byte(`{"recipients":["a","b","c","d"],"text":"hi"}`))
	if code != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("MODIFY: got status %d and %d upstream hits, want 200 and 1", code, hits.Load())
	}
	want := `{"recipients":["a","b"],"text":"hi"}`
	if echo["body"] != want || echo["cc"] != "" || echo["query"] != "a=b" || echo["content_length"] != float64(len(want)) {
		t.Errorf("upstream saw %v, want body %s, no Cc, query a=b, content length %d", echo, want, len(want))
	}
}
