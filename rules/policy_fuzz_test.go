package rules

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
)

var fuzzInput = Input{
	Action: aarm.Action{Tool: "github", Operation: "repos.delete", Effect: aarm.EffectDelete, Target: "acme/prod",
		Destination: aarm.Destination{Host: "api.github.com", External: true}, Method: "DELETE",
		Parameters: map[string]any{"amount": 5.0, "to": []any{"a@b.c"}, "per_page": "500"}},
	Context: map[string]any{"intent": "x", "data_tags": []any{"PII"}, "data_classification": "CONFIDENTIAL",
		"facts": map[string]any{"ticket": "OPS-1"}, "prior_actions": []any{map[string]any{"tool": "github", "effect": "read"}}},
	Signals: map[string]any{"alignment": 0.4, "dlp": map[string]any{"secrets": false, "types": []any{}}},
	Now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
}

// FuzzParsePolicy feeds arbitrary bytes to the policy parser: it must never
// panic, and a policy it accepts must evaluate without panicking.
func FuzzParsePolicy(f *testing.F) {
	f.Add(DefaultPolicy)
	files, _ := filepath.Glob("testdata/policy/policies/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("policy: {id: a, version: \"1\"}\nrules: [{id: r, action: deny, match: {parameters: {x: {gt: 1}}}}]\n"))
	f.Add([]byte("policy: &a {id: *a}\n"))
	f.Add([]byte("rules:\n- when: \"[1,2].all(x, x > 0)\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy("fuzz.yaml", data)
		if err != nil {
			if p != nil {
				t.Fatal("error with a policy")
			}
			return
		}
		Evaluate(p, fuzzInput)
		LintPolicy(p, func(string, string) bool { return false })
	})
}

// FuzzCELCompile feeds arbitrary `when:` expressions through compile and,
// when they compile, evaluation: neither may panic or run unbounded.
func FuzzCELCompile(f *testing.F) {
	for _, s := range []string{
		`signals.alignment < 0.2`,
		`context.prior_actions.filter(a, a.effect == "delete").size() >= 3`,
		`has(context.intent) && context.intent.contains("x")`,
		`now.getHours("UTC") > 22`,
		`action.parameters.exists(k, action.parameters[k] == false)`,
		`[1,2,3].map(x, [1,2,3].map(y, x * y)).size() > 0`,
		`"a".matches("(")`,
		`int(action.parameters.amount) / 0 > 1`,
	} {
		f.Add(s)
	}
	env, err := policyCELEnv()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		prg, _, err := compileCEL(env, src)
		if err != nil {
			return
		}
		r := &PolicyRule{ID: "fuzz", when: prg}
		st := &evalState{p: &Policy{}, in: &fuzzInput, diag: &Diagnostic{}}
		st.evalWhen(r) //nolint:errcheck // only panics matter here
	})
}
