package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const deferPolicy = `
policy:
  id: e2e-defer
  version: "1"
  default: allow
rules:
  - id: release-needs-ticket
    description: Publishing a release waits for the change ticket to be approved.
    match:
      tool: github
      operation: releases.create
      context: {facts.change_ticket_approved: {eq: true}}
    action: allow
    timeout: 30s
    reason: a release needs an approved change ticket
`

type holdJSON struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	State  string `json:"state"`
	Action struct {
		Target   string `json:"target"`
		Identity struct {
			Session string `json:"session"`
		} `json:"identity"`
	} `json:"action"`
	Resolution string `json:"resolution"`
}

func (in *instance) pendingHolds(t testing.TB) []holdJSON {
	t.Helper()
	var out struct {
		Holds []holdJSON `json:"holds"`
	}
	if code := in.api(t, http.MethodGet, "/api/v1/approvals?state=pending", nil, &out); code != http.StatusOK {
		t.Fatalf("list approvals: status %d", code)
	}
	return out.Holds
}

// TestDeferResolvedByContext: a call deferred for missing context is released
// when the context arrives through the admin API; a dependent call (same
// session, same target) waits behind it while an independent one proceeds;
// the agent's own session token cannot approve anything.
func TestDeferResolvedByContext(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", deferPolicy)
	s := inst.startSession(t, "alice", "release-bot", "Publish the v2.1.0 release of acme/web")
	c := inst.goClient(t, s.Token, false)

	release := func() chan *http.Response {
		ch := make(chan *http.Response, 1)
		go func() {
			resp, err := c.Post("https://api.github.com/repos/acme/web/releases", "application/json", strings.NewReader(`{"tag_name":"v2.1.0","name":"v2.1.0"}`))
			if err != nil {
				t.Errorf("release: %v", err)
				ch <- nil
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch <- resp
		}()
		return ch
	}
	first := release()
	var hold holdJSON
	waitFor(t, 10*time.Second, "the deferral", func() bool {
		for _, h := range inst.pendingHolds(t) {
			if h.Action.Identity.Session == s.ID {
				hold = h
				return true
			}
		}
		return false
	})
	if hold.Source != "defer" {
		t.Fatalf("hold source: got %q, want defer", hold.Source)
	}
	second := release() // same session, same target: waits behind the first

	// An independent call proceeds meanwhile.
	resp, err := c.Get("https://api.github.com/repos/acme/api/issues") // another target
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("independent call: status %d", resp.StatusCode)
	}
	select {
	case r := <-first:
		t.Fatalf("deferred call finished before context arrived: %v", r.Status)
	case r := <-second:
		t.Fatalf("dependent call did not wait: %v", r.Status)
	case <-time.After(200 * time.Millisecond):
	}
	if n := countPath(gh, "/repos/acme/web/releases"); n != 0 {
		t.Fatalf("a deferred release reached the upstream %d times", n)
	}

	// The agent's session token is not an admin credential.
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/api/v1/approvals/%s/approve", inst.admin, hold.ID), strings.NewReader(`{"reason":"me"}`))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	if r, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req); err != nil {
		t.Fatal(err)
	} else if r.Body.Close(); r.StatusCode != http.StatusUnauthorized && r.StatusCode != http.StatusForbidden {
		t.Errorf("approval with the agent's session token: status %d, want 401/403", r.StatusCode)
	}

	// The missing fact arrives.
	if code := inst.api(t, http.MethodPost, "/api/v1/sessions/"+s.ID+"/context",
		map[string]any{"facts": map[string]any{"change_ticket_approved": true}, "source": "change-board"}, nil); code != http.StatusOK {
		t.Fatalf("add context: status %d", code)
	}
	for name, ch := range map[string]chan *http.Response{"deferred": first, "dependent": second} {
		select {
		case r := <-ch:
			if r == nil || r.StatusCode != http.StatusOK {
				t.Errorf("%s call after context: got %v, want 200", name, r)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s call not released", name)
		}
	}
	if n := countPath(gh, "/repos/acme/web/releases"); n != 2 {
		t.Errorf("releases reaching the upstream: got %d, want 2", n)
	}
	var got holdJSON
	inst.api(t, http.MethodGet, "/api/v1/approvals/"+hold.ID, nil, &got)
	if got.State != "released" || !strings.Contains(got.Resolution, "change-board") {
		t.Errorf("hold after release: got %+v", got)
	}
}

func countPath(u *upstream, path string) int {
	n := 0
	for _, h := range u.Hits() {
		if h.Path == path {
			n++
		}
	}
	return n
}

func TestRunPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir() + "/d"
	aarmCmd(t, nil, "init", "--dir", dir)
	out, code := aarmCmd(t, nil, "run", "--dir", dir, "--listen", ln.Addr().String(), "--admin", "127.0.0.1:0")
	if code != 1 || !strings.Contains(out, ln.Addr().String()) || !strings.Contains(out, "address already in use") {
		t.Errorf("port in use: exit %d %q", code, out)
	}
}
