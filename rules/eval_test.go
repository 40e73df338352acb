package rules

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/google/go-cmp/cmp"
)

const evalTestPolicy = `policy:
  id: eval-test
  version: "3"
  default: deny
rules:
  - id: pay-approve
    match: {tool: stripe, effect: spend}
    action: step_up
    approvers: [finance, cfo]
    risk_level: critical
    reason: payments need finance
  - id: pay-default-timeout
    match: {tool: stripe2}
    action: step_up
  - id: wait-ticket
    match: {tool: jira}
    action: defer
    classification: context_dependent_defer
    timeout: 45s
    timeout_action: step_up
  - id: strip-cc
    match: {tool: gmail}
    action: modify
    modifications: [{kind: header.delete, path: Cc}]
  - id: rate-send
    match: {tool: slack}
    constraints: {rate: {max: 2, window: 1m, per: [session, tool]}}
    action: allow
  - id: needs-intent
    match: {tool: linear, context: {intent: {matches: "(?i)linear"}}}
    action: allow
`

func mustPolicy(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := ParsePolicy("eval.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvaluateDecisionFields(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	ref := p.Ref()
	al := 0.75
	tests := []struct {
		name string
		in   Input
		want aarm.Decision
	}{
		{"step_up carries approvers, rule risk and default timeout",
			Input{Action: aarm.Action{Tool: "stripe", Effect: aarm.EffectSpend}, Signals: map[string]any{"alignment": 0.75}},
			aarm.Decision{Verdict: aarm.StepUp, Rule: "pay-approve", Reason: "payments need finance", RiskLevel: aarm.RiskCritical,
				Confidence: 1, Alignment: &al, Approvers: []string{"finance", "cfo"}, Timeout: aarm.Duration(DefaultStepUpTimeout),
				TimeoutAction: aarm.Deny, Policy: ref}},
		{"step_up without approvers gets the default timeout and risk",
			Input{Action: aarm.Action{Tool: "stripe2"}},
			aarm.Decision{Verdict: aarm.StepUp, Rule: "pay-default-timeout", Reason: "rule pay-default-timeout matched", RiskLevel: aarm.RiskHigh,
				Confidence: 1, Timeout: aarm.Duration(DefaultStepUpTimeout), TimeoutAction: aarm.Deny, Policy: ref}},
		{"defer carries its timeout and escalation",
			Input{Action: aarm.Action{Tool: "jira"}},
			aarm.Decision{Verdict: aarm.Defer, Classification: aarm.ClassContextDependentDefer, Rule: "wait-ticket", Reason: "deferred: rule wait-ticket matched",
				RiskLevel: aarm.RiskHigh, Confidence: 1, Timeout: aarm.Duration(45 * time.Second), TimeoutAction: aarm.StepUp, Policy: ref}},
		{"modify carries its edits",
			Input{Action: aarm.Action{Tool: "gmail"}},
			aarm.Decision{Verdict: aarm.Modify, Rule: "strip-cc", Reason: "rule strip-cc matched", RiskLevel: aarm.RiskMedium, Confidence: 1,
				Modifications: []aarm.Modification{{Kind: aarm.ModDeleteHeader, Path: "Cc"}}, TimeoutAction: aarm.Deny, Policy: ref}},
		{"missing context defers with the default DEFER timeout",
			Input{Action: aarm.Action{Tool: "linear"}},
			aarm.Decision{Verdict: aarm.Defer, Classification: aarm.ClassContextDependentDefer, Rule: "needs-intent",
				Reason: "context not yet populated: context.intent (rule needs-intent needs it to decide)", RiskLevel: aarm.RiskHigh,
				Confidence: 1, Timeout: aarm.Duration(DefaultDeferTimeout), TimeoutAction: aarm.Deny, Policy: ref}},
		{"default deny names the policy",
			Input{Action: aarm.Action{Tool: "nothing"}},
			aarm.Decision{Verdict: aarm.Deny, Reason: "no rule matched; policy default is DENY", RiskLevel: aarm.RiskHigh, Confidence: 1,
				TimeoutAction: aarm.Deny, Policy: ref}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _ := Evaluate(p, tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateRateKeysAndLimiter(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	rl := NewRateLimiter()
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	in := Input{Action: aarm.Action{Tool: "slack"}, Identity: aarm.Identity{Session: "s-1"}, Rates: rl}
	var verdicts []aarm.Verdict
	for i := range 4 {
		in.Now = now.Add(time.Duration(i) * time.Second)
		d, diag := Evaluate(p, in)
		verdicts = append(verdicts, d.Verdict)
		if d.Verdict.Forwards() {
			for _, k := range diag.RateKeys() {
				rl.Record(k, in.Now)
			}
		}
	}
	if diff := cmp.Diff([]aarm.Verdict{aarm.Allow, aarm.Allow, aarm.Deny, aarm.Deny}, verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	// A minute later the window has slid past the first two.
	in.Now = now.Add(61 * time.Second)
	d, diag := Evaluate(p, in)
	if d.Verdict != aarm.Allow {
		t.Errorf("after the window: got %s (%s), want ALLOW", d.Verdict, d.Reason)
	}
	if got, want := diag.RateKeys(), []string{`rate:rate-send:session="s-1":tool="slack"`}; !slices.Equal(got, want) {
		t.Errorf("rate keys: got %q, want %q", got, want)
	}
	// Another session has its own count.
	in.Identity.Session = "s-2"
	in.Now = now.Add(2 * time.Second)
	if d, _ := Evaluate(p, in); d.Verdict != aarm.Allow {
		t.Errorf("other session: got %s, want ALLOW", d.Verdict)
	}
}

func TestEvaluateNilRatesSaysSo(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	d, diag := Evaluate(p, Input{Action: aarm.Action{Tool: "slack"}})
	if d.Verdict != aarm.Allow {
		t.Fatalf("got %s, want ALLOW", d.Verdict)
	}
	if !slices.ContainsFunc(diag.Notes, func(s string) bool { return strings.Contains(s, "no rate counter") }) {
		t.Errorf("notes: got %q, want a note about the missing rate counter", diag.Notes)
	}
}

func TestEvaluateDiagnostic(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	_, diag := Evaluate(p, Input{Action: aarm.Action{Tool: "stripe", Effect: aarm.EffectSpend}})
	if diag.Step != StepStatic || diag.Rule != "pay-approve" || diag.Position != "eval.yaml:6" {
		t.Errorf("got step %s rule %s at %s, want static pay-approve at eval.yaml:6", diag.Step, diag.Rule, diag.Position)
	}
	if len(diag.Rules) != len(p.Rules) {
		t.Fatalf("traces: got %d, want %d", len(diag.Rules), len(p.Rules))
	}
	byID := map[string]PolicyRuleTrace{}
	for _, tr := range diag.Rules {
		byID[tr.Rule] = tr
	}
	if tr := byID["pay-approve"]; !tr.Matched {
		t.Errorf("pay-approve: got not matched (%s), want matched", tr.Skipped)
	}
	if tr := byID["strip-cc"]; tr.Matched || tr.Skipped != "tool" {
		t.Errorf("strip-cc: got matched=%v skipped=%q, want skipped on tool", tr.Matched, tr.Skipped)
	}
}

func TestEvaluateDoesNotMutateInput(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	ctx := map[string]any{"intent": "x"}
	in := Input{Action: aarm.Action{Tool: "gmail", Parameters: map[string]any{"to": "a@b.c"}}, Context: ctx}
	d, _ := Evaluate(p, in)
	d.Modifications[0].Path = "changed"
	d2, _ := Evaluate(p, in)
	if d2.Modifications[0].Path != "Cc" {
		t.Errorf("a caller's edit of one decision leaked into the policy: got %q", d2.Modifications[0].Path)
	}
	if len(ctx) != 1 {
		t.Errorf("context was modified: %v", ctx)
	}
}

func TestEvaluateIdentityFallsBackToAction(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	_, diag := Evaluate(p, Input{Action: aarm.Action{Tool: "slack", Identity: aarm.Identity{Session: "from-action"}}})
	if got := diag.RateKeys(); len(got) != 1 || !strings.Contains(got[0], `session="from-action"`) {
		t.Errorf("rate keys: got %q, want the action's session", got)
	}
}

func TestDiagnosticLogValue(t *testing.T) {
	t.Parallel()
	p := mustPolicy(t, evalTestPolicy)
	_, diag := Evaluate(p, Input{Action: aarm.Action{Tool: "gmail"}})
	got := diag.LogValue().String()
	for _, want := range []string{"step=static", "rule=strip-cc", "position=eval.yaml:", "matched=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("LogValue: got %s, want it to contain %s", got, want)
		}
	}
}
