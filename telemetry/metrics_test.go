package telemetry

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
)

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	m := New(Sources{
		HoldsPending: func() map[string]int { return map[string]int{"step_up": 2} },
		LedgerSize:   func() uint64 { return 42 },
	})
	m.Decision(aarm.Decision{Verdict: aarm.Deny, Rule: "no-secrets"}, "github", 3*time.Millisecond)
	m.Decision(aarm.Decision{Verdict: aarm.Allow}, "github", time.Millisecond)
	m.PolicyReload(false, nil)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`aarm_decisions_total{rule="no-secrets",tool="github",verdict="DENY"} 1`,
		`aarm_decisions_total{rule="",tool="github",verdict="ALLOW"} 1`,
		`aarm_policy_reloads_total{result="error"} 1`,
		`aarm_policy_last_reload_ok 0`,
		`aarm_holds_pending{source="step_up"} 2`,
		`aarm_holds_pending{source="defer"} 0`,
		`aarm_ledger_receipts 42`,
		`aarm_decision_seconds_count{verdict="DENY"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
