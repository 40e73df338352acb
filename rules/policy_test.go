package rules

import (
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aarmproxy/aarm"
	"github.com/google/go-cmp/cmp"
)

var verbosePolicyGolden = flag.Bool("policy-verbose", false, "print every golden policy case")

func TestDefaultPolicyParses(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("policy.yaml", DefaultPolicy)
	if err != nil {
		t.Fatalf("default policy: %v", err)
	}
	if got, want := p.Ref().ID, "aarm-default"; got != want {
		t.Errorf("id: got %q, want %q", got, want)
	}
	if len(p.SHA256()) != 64 {
		t.Errorf("sha256: got %q, want 64 hex digits", p.SHA256())
	}
	if p.Default != aarm.Allow {
		t.Errorf("default: got %s, want ALLOW", p.Default)
	}
}

// TestPolicyGolden runs the corpus in testdata/policy through RunPolicyTests.
func TestPolicyGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/policy/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	results, err := RunPolicyTests(files...)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 120 {
		t.Errorf("corpus has %d cases, want at least 120", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s:%d %s:\n\t%s", r.File, r.Line, r.Name, strings.Join(r.Failures, "\n\t"))
		} else if *verbosePolicyGolden {
			t.Logf("PASS %s:%d %s → %s %s", r.File, r.Line, r.Name, r.Decision.Verdict, r.Decision.Rule)
		}
	}
}

// TestPolicyDeterminism evaluates every golden case 1000 times with the
// rules in shuffled order and wants the same decision and step every time.
func TestPolicyDeterminism(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/policy/*.yaml")
	n := 1000
	if testing.Short() {
		n = 50
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range files {
		data := mustRead(t, f)
		tf, err := parsePolicyTestFile(f, data)
		if err != nil {
			t.Fatal(err)
		}
		p, err := loadPolicyTestPolicy(f, &tf.Policy)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tf.Cases {
			c := &tf.Cases[i]
			in, err := PolicyTestInput(c)
			if err != nil {
				t.Fatal(err)
			}
			want, wantDiag := Evaluate(p, in)
			shuffled := *p
			shuffled.Rules = append([]PolicyRule(nil), p.Rules...)
			// Every case is shuffled; every tenth one 1000 times (the
			// issue's bar), the rest fewer to keep -race runs short.
			rounds := n
			if i%10 != 0 {
				rounds = min(n, 25)
			}
			for range rounds {
				rng.Shuffle(len(shuffled.Rules), func(a, b int) {
					shuffled.Rules[a], shuffled.Rules[b] = shuffled.Rules[b], shuffled.Rules[a]
				})
				got, diag := Evaluate(&shuffled, in)
				if diff := cmp.Diff(want, got); diff != "" || diag.Step != wantDiag.Step {
					t.Fatalf("%s %q: decision changed with rule order (-first +later):\n%s", f, c.Name, diff)
				}
			}
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	t.Parallel()
	head := "policy: {id: t, version: \"1\"}\nrules:\n"
	tests := []struct {
		name, src, want string
	}{
		{"unknown top key", "polcy: {}\n", "policy.yaml:1:1: polcy: unknown key"},
		{"missing id", "policy: {version: \"1\"}\n", "policy.yaml:1:9: policy.id: missing"},
		{"unknown rule key", head + "  - id: a\n    action: deny\n    actoin: allow\n", "policy.yaml:5:5: rules[0].actoin: unknown key"},
		{"unknown action", head + "  - id: a\n    action: maybe\n", "policy.yaml:4:13: rules[0].action: unknown action \"maybe\""},
		{"bad operator", head + "  - id: a\n    action: deny\n    match: {parameters: {x: {bigger: 1}}}\n", "policy.yaml:5:30: rules[0].match.parameters.x.bigger: unknown key"},
		{"bad regex", head + "  - id: a\n    action: deny\n    match: {target: {matches: \"(\"}}\n", "rules[0].match.target.matches: invalid regular expression"},
		{"cel type error", head + "  - id: a\n    action: deny\n    when: \"1 + 'a'\"\n", "rules[0].when: when: CEL expression does not compile"},
		{"cel not bool", head + "  - id: a\n    action: deny\n    when: \"'a'\"\n", "must be a bool"},
		{"cel unknown var", head + "  - id: a\n    action: deny\n    when: \"request.x == 1\"\n", "undeclared reference"},
		{"timeout allow", head + "  - id: a\n    action: step_up\n    timeout_action: allow\n", "fail open"},
		{"forbidden allow", head + "  - id: a\n    action: allow\n    classification: forbidden\n", "allow is not allowed for a forbidden rule"},
		{"duplicate id", head + "  - {id: a, action: deny}\n  - {id: a, action: allow}\n", "duplicate rule id \"a\" (first at line 3)"},
		{"modify without edits", head + "  - {id: a, action: modify}\n", "a modify rule needs at least one modification"},
		{"edits without modify", head + "  - {id: a, action: allow, modifications: [{kind: body.delete, path: x}]}\n", "only a modify rule applies modifications"},
		{"bad edit kind", head + "  - {id: a, action: modify, modifications: [{kind: body.rename, path: x}]}\n", "unknown edit \"body.rename\""},
		{"bad effect", head + "  - {id: a, action: deny, match: {effect: destroy}}\n", "unknown effect \"destroy\""},
		{"bad threshold", head + "  - {id: a, action: deny, threshold: 2}\n", "2 is outside 0..1"},
		{"gt needs number", head + "  - {id: a, action: deny, match: {parameters: {x: {gt: lots}}}}\n", "gt needs a number or an ordered name"},
		{"rate needs max", head + "  - {id: a, action: allow, constraints: {rate: {window: 1m}}}\n", "rules[0].constraints.rate.max: missing"},
		{"bad glob", head + "  - {id: a, action: deny, match: {tool: \"git[hub\"}}\n", "unclosed ["},
		{"two documents", "policy: {id: t, version: \"1\"}\n---\npolicy: {}\n", "more than one YAML document"},
		{"yaml syntax", "policy: [\n", "policy.yaml:"},
		{"modify default", "policy: {id: t, version: \"1\", default: modify}\n", "modify cannot be a default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicy("policy.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("errors.Is(err, ErrInvalidPolicy) is false for %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEvaluateNilPolicyDenies(t *testing.T) {
	t.Parallel()
	d, diag := Evaluate(nil, Input{})
	if d.Verdict != aarm.Deny || diag.Step != StepNoPolicy {
		t.Errorf("got %s at %s, want DENY at %s", d.Verdict, diag.Step, StepNoPolicy)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
