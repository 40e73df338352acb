package rules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLintPolicy(t *testing.T) {
	t.Parallel()
	src := `policy: {id: lint, version: "1"}
rules:
  - {id: all-github, match: {tool: github}, action: allow, priority: 5}
  - {id: github-issues, match: {tool: github, operation: "issues.*"}, action: deny, priority: 5}
  - {id: github-low, match: {tool: github, operation: repos.get}, action: deny, priority: 1}
  - {id: github-high, match: {tool: github, operation: repos.get}, action: deny, priority: 9}
  - {id: rate-limited, match: {tool: github}, action: allow, priority: 1, constraints: {rate: {max: 1, window: 1m}}}
  - {id: other-class, match: {tool: github}, action: deny, classification: context_dependent_deny}
  - {id: unknown-op, match: {tool: github, operation: repos.explode}, action: deny, priority: 10}
  - {id: unknown-tool, match: {tool: jira}, action: deny, priority: 10}
  - {id: typo-context, match: {tool: "git*", context: {intnet: {exists: true}}}, action: deny, priority: 20}
  - {id: typo-cel, when: "action.tol == 'x' || signals.aligment < 0.1", action: deny, priority: 20}
`
	p, err := ParsePolicy("lint.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	packs := map[string][]string{"github": {"issues.create", "issues.list", "repos.get", "repos.delete"}}
	known := LintKnownFrom(packs)
	var got []string
	for _, f := range LintPolicy(p, known) {
		got = append(got, string(f.Kind)+" "+f.Rule+" "+f.Position)
	}
	want := []string{
		"shadowed github-issues lint.yaml:4",
		"shadowed github-low lint.yaml:5",
		"unknown_tool unknown-op lint.yaml:9",
		"unknown_tool unknown-tool lint.yaml:10",
		"unknown_field typo-context lint.yaml:11",
		"unknown_field typo-cel lint.yaml:12",
		"unknown_field typo-cel lint.yaml:12",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

func TestLintDefaultPolicyClean(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("policy.yaml", DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range LintPolicy(p, nil) {
		if f.Kind != LintUnknownTool {
			t.Errorf("default policy: %s", f)
		}
	}
	if s := (LintFinding{Kind: LintShadowed, Rule: "r", Position: "p.yaml:3", Message: "m"}).String(); !strings.Contains(s, "p.yaml:3: shadowed: rule r: m") {
		t.Errorf("String: got %q", s)
	}
}
