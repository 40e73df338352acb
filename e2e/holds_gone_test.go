package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const holdsGonePolicy = `policy:
  id: e2e-holds-gone
  version: "1"
  default: allow
rules:
  - id: deletes-need-approval
    match: {tool: github, operation: repos.delete}
    action: STEP_UP
    risk_level: critical
    timeout: 60s
    reason: deleting a repository needs a person
`

// TestHeldClientGone: an HTTP/1.1 client (curl, Python's urllib, Go) whose
// repository delete is held for approval goes away; the hold ends as
// client_gone within seconds instead of waiting for its 60 s timeout, and the
// delete never reaches the upstream (issue 7).
func TestHeldClientGone(t *testing.T) {
	ca := newUpstreamCA(t)
	gh := newUpstream(t, ca, "api.github.com")
	inst := startAarm(t, ca, []*upstream{gh}, "", holdsGonePolicy)
	const url = "https://api.github.com/repos/acme/web"

	// Each client starts the DELETE and returns how to make it go away.
	clients := []struct {
		name  string
		start func(t *testing.T, s session) (leave func())
	}{
		{"curl http1.1 killed", func(t *testing.T, s session) func() {
			if _, err := exec.LookPath("curl"); err != nil {
				t.Fatal("curl not installed: run scripts/install-test-deps.sh")
			}
			return startKillable(t, s, "curl", "-sS", "--http1.1", "--max-time", "120", "-X", "DELETE", url)
		}},
		{"python urllib killed", func(t *testing.T, s session) func() {
			py, err := exec.LookPath("python3")
			if err != nil {
				t.Fatal("python3 not installed: run scripts/install-test-deps.sh")
			}
			script := `import urllib.request
req = urllib.request.Request("` + url + `", method="DELETE")
urllib.request.urlopen(req, timeout=120)
`
			return startKillable(t, s, py, "-c", script)
		}},
		{"go http1.1 cancelled", func(t *testing.T, s session) func() {
			c := inst.goClient(t, s.Token, false)
			ctx, cancel := context.WithCancel(t.Context())
			done := agentCall(ctx, c, http.MethodDelete, url, "")
			return func() {
				cancel()
				if r := <-done; r.err == nil {
					t.Errorf("Go client: got status %d, want the request cancelled", r.status)
				}
			}
		}},
	}
	for _, tc := range clients {
		t.Run(tc.name, func(t *testing.T) {
			s := inst.startSession(t, "alice", "cleanup-bot", "Tidy up the acme/web repository")
			leave := tc.start(t, s)
			var hold holdJSON
			waitFor(t, 15*time.Second, "the held delete", func() bool {
				for _, h := range inst.pendingHolds(t) {
					if h.Action.Identity.Session == s.ID {
						hold = h
						return true
					}
				}
				return false
			})
			if hold.Source != "step_up" || hold.Action.Target != "acme/web" {
				t.Fatalf("hold: got source %q target %q, want step_up acme/web", hold.Source, hold.Action.Target)
			}
			time.Sleep(300 * time.Millisecond) // well into the hold
			left := time.Now()
			leave()
			var got holdJSON
			waitFor(t, 5*time.Second, "the hold to end as client_gone", func() bool {
				inst.api(t, http.MethodGet, "/api/v1/approvals/"+hold.ID, nil, &got)
				return got.State != "pending"
			})
			if got.State != "client_gone" {
				t.Fatalf("hold after the client left: state %q resolution %q, want client_gone", got.State, got.Resolution)
			}
			if !strings.Contains(got.Resolution, "client gone") {
				t.Errorf("hold resolution: got %q, want it to say client gone", got.Resolution)
			}
			t.Logf("hold %s ended as %s %v after the client left", hold.ID, got.State, time.Since(left).Round(10*time.Millisecond))
			if n := countPath(gh, "/repos/acme/web"); n != 0 {
				t.Errorf("the held delete reached the upstream %d times, want 0", n)
			}
		})
	}
}

// startKillable runs an agent process with the session's environment and
// returns a function that kills it (SIGKILL: no clean TLS shutdown, the
// kernel closes the socket) and reaps it.
func startKillable(t *testing.T, s session, name string, args ...string) func() {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(cleanEnv(), s.envList()...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var reaped bool
	kill := func() {
		if reaped {
			return
		}
		reaped = true
		select {
		case err := <-exited:
			t.Errorf("%s exited before it was killed (%v): %s", name, err, out.String())
			return
		default:
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(kill)
	return kill
}
