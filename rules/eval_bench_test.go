package rules

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
)

// policyOf200Rules builds a policy with 200 rules of every kind: globs,
// parameter and context operators, CEL, rate constraints.
func policyOf200Rules(tb testing.TB) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("policy: {id: bench, version: \"1\", default: allow, internal_domains: [acme.com]}\nrules:\n")
	for i := range 200 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "  - {id: r%d, match: {tool: tool%d, operation: \"op.*\"}, action: deny, priority: %d}\n", i, i, i%7)
		case 1:
			fmt.Fprintf(&b, "  - {id: r%d, match: {tool: \"git*\", parameters: {amount: {gt: %d}}, context: {data_classification: {gte: CONFIDENTIAL}}}, action: step_up, priority: %d}\n", i, 1000+i, i%7)
		case 2:
			fmt.Fprintf(&b, "  - {id: r%d, match: {effect: send, parameters: {to: {not: {domain_allowlist: [acme.com]}}}, risk_signals: {alignment: {lt: 0.%d}}}, action: deny, classification: context_dependent_deny, priority: %d}\n", i, 1+i%9, i)
		case 3:
			fmt.Fprintf(&b, "  - {id: r%d, match: {tool: github, operation: [\"repos.*\", \"issues.*\"]}, when: 'context.prior_actions.size() > %d', action: deny, classification: compositional, priority: %d}\n", i, 50+i, i)
		case 4:
			fmt.Fprintf(&b, "  - {id: r%d, match: {tool: github, target: {matches: \"^acme/r%d\"}}, constraints: {rate: {max: 100, window: 1m}}, action: allow, priority: %d}\n", i, i, i%7)
		}
	}
	p, err := ParsePolicy("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func benchInput() Input {
	return Input{
		Action: aarm.Action{Tool: "github", Operation: "issues.create", Effect: aarm.EffectWrite, Target: "acme/web",
			Destination: aarm.Destination{Host: "api.github.com", External: true}, Method: "POST",
			Parameters: map[string]any{"title": "t", "amount": 10.0}, Identity: aarm.Identity{Session: "s"}},
		Context: map[string]any{"intent": "label issues", "data_classification": "INTERNAL", "data_tags": []any{},
			"prior_actions": []any{map[string]any{"tool": "github", "effect": "read"}}},
		Signals: map[string]any{"alignment": 0.8, "dlp": map[string]any{"secrets": false}},
		Now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Rates:   NewRateLimiter(),
	}
}

// BenchmarkEvaluate200Rules reports evaluations per second and the p99
// latency of one evaluation against a 200-rule policy.
func BenchmarkEvaluate200Rules(b *testing.B) {
	p := policyOf200Rules(b)
	in := benchInput()
	in.Identity = in.Action.Identity
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		t0 := time.Now()
		d, _ := Evaluate(p, in)
		lat = append(lat, time.Since(t0))
		if d.Rule == "never" {
			b.Fatal("unreachable")
		}
		n++
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "evals/s")
	}
}

func TestEvaluate200RulesDecides(t *testing.T) {
	t.Parallel()
	p := policyOf200Rules(t)
	in := benchInput()
	d, diag := Evaluate(p, in)
	if len(diag.Rules) != 200 {
		t.Errorf("traces: got %d, want 200", len(diag.Rules))
	}
	if d.Verdict != aarm.Allow {
		t.Errorf("got %s by %s (%s), want ALLOW", d.Verdict, d.Rule, d.Reason)
	}
}

// BenchmarkEvaluateDefaultPolicy is the shipped policy on a typical write:
// the policy engine's share of the latency added to a proxied request.
func BenchmarkEvaluateDefaultPolicy(b *testing.B) {
	p, err := ParsePolicy("policy.yaml", DefaultPolicy)
	if err != nil {
		b.Fatal(err)
	}
	in := benchInput()
	in.Signals = map[string]any{
		"dlp":                    map[string]any{"count": 0.0, "types": []any{}, "secrets": false, "pii": false},
		"taint":                  map[string]any{"sources": []any{}, "classification": "", "overlap": 0.0},
		"destination_provenance": "intent", "alignment": 0.9, "drift": map[string]any{"ema": 0.1, "max": 0.2},
	}
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := Evaluate(p, in); d.Verdict != aarm.Allow {
			b.Fatalf("got %s (%s)", d.Verdict, d.Reason)
		}
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	t.Parallel()
	p := policyOf200Rules(t)
	want, _ := Evaluate(p, benchInput())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if got, _ := Evaluate(p, benchInput()); got.Verdict != want.Verdict || got.Rule != want.Rule {
					t.Errorf("concurrent evaluation: got %s %s, want %s %s", got.Verdict, got.Rule, want.Verdict, want.Rule)
					return
				}
			}
		})
	}
	wg.Wait()
}
