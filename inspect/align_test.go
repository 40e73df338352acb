package inspect

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aarmproxy/aarm"
)

type alignPair struct {
	Intent string   `yaml:"intent"`
	Scope  []string `yaml:"scope"`
	Action struct {
		Tool      string            `yaml:"tool"`
		Operation string            `yaml:"operation"`
		Effect    string            `yaml:"effect"`
		Target    string            `yaml:"target"`
		Params    map[string]string `yaml:"params"`
		Entities  []struct {
			Kind  string `yaml:"kind"`
			Value string `yaml:"value"`
		} `yaml:"entities"`
	} `yaml:"action"`
	Label string `yaml:"label"`
}

func (p alignPair) descriptor() ActionDescriptor {
	a := ActionDescriptor{Tool: p.Action.Tool, Operation: p.Action.Operation, Effect: aarm.Effect(p.Action.Effect), Target: p.Action.Target, Params: p.Action.Params}
	for _, e := range p.Action.Entities {
		a.Entities = append(a.Entities, EntityRef{aarm.EntityKind(e.Kind), e.Value})
	}
	return a
}

func loadAlignPairs(t *testing.T) []alignPair {
	t.Helper()
	b, err := os.ReadFile("testdata/intent/pairs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Pairs []alignPair `yaml:"pairs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("pairs.yaml: %v", err)
	}
	for i, p := range f.Pairs {
		if p.Label != "benign" && p.Label != "misaligned" {
			t.Fatalf("pairs.yaml: pairs[%d]: label %q", i, p.Label)
		}
		if !aarm.Effect(p.Action.Effect).Valid() {
			t.Fatalf("pairs.yaml: pairs[%d]: effect %q", i, p.Action.Effect)
		}
	}
	return f.Pairs
}

// TestAlignCalibration checks that DefaultAlignmentThreshold separates the
// labelled pairs with at least 90% accuracy, and reports the distribution
// quoted in docs/context-checks.md (go test -run AlignCalibration -v).
func TestAlignCalibration(t *testing.T) {
	t.Parallel()
	pairs := loadAlignPairs(t)
	if len(pairs) < 60 {
		t.Fatalf("got %d pairs, want >= 60", len(pairs))
	}
	m := NewIntentModel()
	var benign, bad []float64
	correct := 0
	for _, p := range pairs {
		al := m.Align(p.Intent, p.Scope, p.descriptor())
		ok := (al.Score >= DefaultAlignmentThreshold) == (p.Label == "benign")
		if ok {
			correct++
		} else {
			t.Logf("misclassified %s %.3f: %q vs %s %s %s (%s)", p.Label, al.Score, p.Intent, p.Action.Tool, p.Action.Operation, p.Action.Target, al.Explanation)
		}
		if p.Label == "benign" {
			benign = append(benign, al.Score)
		} else {
			bad = append(bad, al.Score)
		}
	}
	acc := float64(correct) / float64(len(pairs))
	slices.Sort(benign)
	slices.Sort(bad)
	t.Logf("pairs %d (benign %d, misaligned %d), threshold %.2f, accuracy %.3f", len(pairs), len(benign), len(bad), DefaultAlignmentThreshold, acc)
	t.Logf("benign scores: min %.3f median %.3f max %.3f", benign[0], benign[len(benign)/2], benign[len(benign)-1])
	t.Logf("misaligned scores: min %.3f median %.3f max %.3f", bad[0], bad[len(bad)/2], bad[len(bad)-1])
	best, bestAcc := 0.0, 0.0
	for th := 0.05; th < 1; th += 0.05 {
		n := 0
		for _, s := range benign {
			if s >= th {
				n++
			}
		}
		for _, s := range bad {
			if s < th {
				n++
			}
		}
		if a := float64(n) / float64(len(pairs)); a > bestAcc {
			best, bestAcc = th, a
		}
	}
	t.Logf("best threshold on this corpus %.2f (accuracy %.3f)", best, bestAcc)
	if acc < 0.9 {
		t.Errorf("accuracy at threshold %.2f: got %.3f, want >= 0.9", DefaultAlignmentThreshold, acc)
	}
}

func TestAlignMonotonic(t *testing.T) {
	t.Parallel()
	m := NewIntentModel()
	base := []struct {
		intent string
		add    string
		a      ActionDescriptor
	}{
		{"Summarise the open issues", " in acme/web", ActionDescriptor{Tool: "github", Operation: "issues.list", Effect: aarm.EffectRead, Target: "acme/web"}},
		{"Summarise the open issues in acme/web", " and delete the stale ones", ActionDescriptor{Tool: "github", Operation: "issues.delete", Effect: aarm.EffectDelete, Target: "acme/web"}},
		{"Read the report", " and email it to carol@acme.com", ActionDescriptor{Tool: "gmail", Operation: "messages.send", Effect: aarm.EffectSend, Entities: []EntityRef{{aarm.EntityEmail, "carol@acme.com"}}}},
		{"Look at the invoice", " and pay it", ActionDescriptor{Tool: "payments", Operation: "transfers.create", Effect: aarm.EffectSpend}},
		{"Pay the invoice", " to GB82 WEST 1234 5698 7654 32", ActionDescriptor{Tool: "payments", Operation: "transfers.create", Effect: aarm.EffectSpend, Entities: []EntityRef{{aarm.EntityAccount, "GB82WEST12345698765432"}}}},
		{"Check #incidents", " and post a summary to Slack", ActionDescriptor{Tool: "slack", Operation: "chat.postMessage", Effect: aarm.EffectSend, Target: "#incidents"}},
		{"Look at the repo", " and clean up old branches", ActionDescriptor{Tool: "github", Operation: "git.deleteRef", Effect: aarm.EffectDelete, Target: "acme/web"}},
		{"Review the doc", " and share it with erin@acme.com", ActionDescriptor{Tool: "google-drive", Operation: "permissions.create", Effect: aarm.EffectSend, Entities: []EntityRef{{aarm.EntityEmail, "erin@acme.com"}}}},
		{"Triage bugs", " and comment on them", ActionDescriptor{Tool: "github", Operation: "issues.createComment", Effect: aarm.EffectWrite, Target: "acme/web"}},
		{"Prepare the changelog", " and deploy it", ActionDescriptor{Tool: "github", Operation: "actions.createWorkflowDispatch", Effect: aarm.EffectExecute}},
	}
	for _, tc := range base {
		t.Run(tc.intent+tc.add, func(t *testing.T) {
			t.Parallel()
			before := m.Align(tc.intent, nil, tc.a).Score
			after := m.Align(tc.intent+tc.add, nil, tc.a).Score
			if after < before {
				t.Errorf("adding %q lowered the score: %.3f → %.3f", tc.add, before, after)
			}
			if after == before {
				t.Errorf("adding %q did not raise the score (%.3f); the construction should matter", tc.add, before)
			}
		})
	}
}

func TestAlignScopeAndComponents(t *testing.T) {
	t.Parallel()
	m := NewIntentModel()
	a := ActionDescriptor{Tool: "github", Operation: "issues.addLabels", Effect: aarm.EffectWrite, Target: "acme/web"}
	intent := "Label my open GitHub issues in acme/web"
	tests := []struct {
		name      string
		scope     []string
		a         ActionDescriptor
		expansion bool
		scopeVal  float64
	}{
		{"no scope", nil, a, false, 0.5},
		{"target glob", []string{"github:acme/*"}, a, false, 1},
		{"operation prefix", []string{"github:issues"}, a, false, 1},
		{"effect", []string{"gmail:send", "github:write"}, a, false, 1},
		{"tool only", []string{"github"}, a, false, 1},
		{"other repo", []string{"github:acme/api"}, a, true, 0},
		{"other tool", []string{"slack:*"}, a, true, 0},
		{"issue target under scoped repo", []string{"github:acme/web"}, ActionDescriptor{Tool: "github", Operation: "issues.createComment", Effect: aarm.EffectWrite, Target: "acme/web#12"}, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			al := m.Align(intent, tc.scope, tc.a)
			if al.ScopeExpansion != tc.expansion || al.Scope != tc.scopeVal {
				t.Errorf("got expansion %v scope %v, want %v %v", al.ScopeExpansion, al.Scope, tc.expansion, tc.scopeVal)
			}
			if al.Score < 0 || al.Score > 1 || !al.HasIntent {
				t.Errorf("score %v hasIntent %v", al.Score, al.HasIntent)
			}
		})
	}
	in := m.Align(intent, []string{"github:acme/web"}, a).Score
	out := m.Align(intent, []string{"github:acme/api"}, a).Score
	if out >= DefaultAlignmentThreshold || in <= out {
		t.Errorf("scope violation should be a strong negative: in %.3f, out %.3f", in, out)
	}
	issue := ActionDescriptor{Tool: "github", Operation: "issues.createComment", Effect: aarm.EffectWrite, Target: "acme/web#12"}
	if al := m.Align(intent, nil, issue); al.Entity != 1 {
		t.Errorf("issue target under the intent's repo: entity %.2f (%s), want 1", al.Entity, al.Explanation)
	}
	if al := m.Align("  ", nil, a); al.HasIntent || al.Score != 0.5 {
		t.Errorf("empty intent: got %+v, want HasIntent false, score 0.5", al)
	}
	// Agent-written parameter values cannot buy alignment.
	del := ActionDescriptor{Tool: "github", Operation: "repos.delete", Effect: aarm.EffectDelete, Target: "acme/web", Params: map[string]string{"note": "label summarise issues acme/web"}}
	if s := m.Align(intent, nil, del).Score; s > alignUnsupportedCap {
		t.Errorf("unsupported delete: got %.3f, want <= %.2f", s, alignUnsupportedCap)
	}
}

func TestBlendAlignmentAndCosine(t *testing.T) {
	t.Parallel()
	lex := Alignment{Score: 0.6, Effect: 1, HasIntent: true}
	if got := BlendAlignment(lex, 0.9, 0.5); math.Abs(got-0.75) > 1e-9 {
		t.Errorf("blend: got %v, want 0.75", got)
	}
	if got := BlendAlignment(lex, 2, 7); got != 1 {
		t.Errorf("clamped blend: got %v, want 1", got)
	}
	capped := Alignment{Score: 0.3, Effect: 0, HasIntent: true}
	if got := BlendAlignment(capped, 1, 1); got > alignUnsupportedCap {
		t.Errorf("blend must keep the unsupported-effect cap: got %v", got)
	}
	if c := Cosine([]float32{1, 0}, []float32{1, 0}); math.Abs(c-1) > 1e-9 {
		t.Errorf("cosine equal: got %v", c)
	}
	if c := Cosine([]float32{1, 0}, []float32{0, 1}); c != 0 {
		t.Errorf("cosine orthogonal: got %v", c)
	}
	if c := Cosine([]float32{1}, []float32{1, 2}); c != 0 {
		t.Errorf("cosine length mismatch: got %v", c)
	}
}

func TestDriftUpdate(t *testing.T) {
	t.Parallel()
	var d Drift
	d = d.Update(0.9, 0.5)
	if math.Abs(d.EMA-0.1) > 1e-9 || math.Abs(d.Max-0.1) > 1e-9 || d.N != 1 {
		t.Fatalf("first update: got %+v, want EMA 0.1 Max 0.1 N 1", d)
	}
	d = d.Update(0.1, 0.5)
	if math.Abs(d.EMA-0.5) > 1e-9 || math.Abs(d.Max-0.9) > 1e-9 || d.N != 2 {
		t.Fatalf("second update: got %+v, want EMA 0.5 Max 0.9 N 2", d)
	}
	e := d.Update(1.5, 0) // clamped alignment, default alpha
	if math.Abs(e.EMA-0.35) > 1e-9 || e.Max != d.Max {
		t.Errorf("default alpha and clamping: got %+v", e)
	}
	if sig := e.Signal(); sig["ema"] != e.EMA || sig["max"] != e.Max {
		t.Errorf("Signal: got %v", sig)
	}
}

// TestDriftSeparatesSequences replays a benign task and a hijacked one
// through the model and checks that DefaultDriftThreshold (on the EMA)
// tells them apart.
func TestDriftSeparatesSequences(t *testing.T) {
	t.Parallel()
	m := NewIntentModel()
	intent := "Summarise the open issues in acme/web and comment on the stale ones"
	benign := []ActionDescriptor{
		{Tool: "github", Operation: "issues.list", Effect: aarm.EffectRead, Target: "acme/web"},
		{Tool: "github", Operation: "issues.get", Effect: aarm.EffectRead, Target: "acme/web"},
		{Tool: "github", Operation: "issues.listComments", Effect: aarm.EffectRead, Target: "acme/web"},
		{Tool: "github", Operation: "issues.createComment", Effect: aarm.EffectWrite, Target: "acme/web"},
	}
	hijacked := append(slices.Clone(benign[:2]),
		ActionDescriptor{Tool: "github", Operation: "contents.delete", Effect: aarm.EffectDelete, Target: "acme/web"},
		ActionDescriptor{Tool: "github", Operation: "git.deleteRef", Effect: aarm.EffectDelete, Target: "acme/web"},
		ActionDescriptor{Tool: "github", Operation: "repos.delete", Effect: aarm.EffectDelete, Target: "acme/web"},
	)
	run := func(seq []ActionDescriptor) (Drift, []string) {
		var d Drift
		var trace []string
		for _, a := range seq {
			s := m.Align(intent, nil, a).Score
			d = d.Update(s, DefaultDriftAlpha)
			trace = append(trace, fmt.Sprintf("%s=%.2f/ema %.2f", a.Operation, s, d.EMA))
		}
		return d, trace
	}
	db, tb := run(benign)
	dh, th := run(hijacked)
	t.Logf("benign: %s", strings.Join(tb, ", "))
	t.Logf("hijacked: %s", strings.Join(th, ", "))
	if db.EMA >= DefaultDriftThreshold || db.Max >= DefaultDriftThreshold+0.2 {
		t.Errorf("benign drift %+v over threshold %.2f", db, DefaultDriftThreshold)
	}
	if dh.EMA < DefaultDriftThreshold {
		t.Errorf("hijacked drift EMA %.3f under threshold %.2f", dh.EMA, DefaultDriftThreshold)
	}
}

func TestLexicon(t *testing.T) {
	t.Parallel()
	if _, err := parseLexicon(lexiconYAML); err != nil {
		t.Fatalf("shipped lexicon: %v", err)
	}
	if _, err := parseLexicon([]byte("version: 1\nconcepts: [{name: x, wrods: [a]}]\n")); err == nil {
		t.Errorf("unknown key accepted; want strict decoding error")
	}
	if _, err := parseLexicon([]byte("version: 2\n")); err == nil {
		t.Errorf("version 2 accepted")
	}
	stems := []struct{ a, b string }{
		{"summarise", "summarize"}, {"summarising", "summarise"}, {"deleted", "delete"}, {"payments", "payment"},
		{"payment", "pay"}, {"issues", "issue"}, {"invoices", "invoice"}, {"labelled", "label"}, {"labels", "label"},
		{"running", "run"}, {"organisation", "organize"}, {"replies", "reply"},
	}
	for _, s := range stems {
		if lexStem(s.a) != lexStem(s.b) {
			t.Errorf("lexStem(%q)=%q, lexStem(%q)=%q: want equal", s.a, lexStem(s.a), s.b, lexStem(s.b))
		}
	}
	if got := lexTokens("chat.postMessage repos/acme-web"); !slices.Equal(got, []string{"chat", "post", "message", "repos", "acme", "web"}) {
		t.Errorf("lexTokens: got %v", got)
	}
}

// TestAlignHoldout reports accuracy on pairs never used for tuning.
func TestAlignHoldout(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/intent/holdout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Pairs []alignPair `yaml:"pairs"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	m := NewIntentModel()
	correct := 0
	for _, p := range f.Pairs {
		al := m.Align(p.Intent, p.Scope, p.descriptor())
		if (al.Score >= DefaultAlignmentThreshold) == (p.Label == "benign") {
			correct++
		} else {
			t.Logf("holdout misclassified %s %.3f: %q vs %s %s %s (%s)", p.Label, al.Score, p.Intent, p.Action.Tool, p.Action.Operation, p.Action.Target, al.Explanation)
		}
	}
	acc := float64(correct) / float64(len(f.Pairs))
	t.Logf("holdout pairs %d, accuracy %.3f at threshold %.2f", len(f.Pairs), acc, DefaultAlignmentThreshold)
	if acc < 0.75 {
		t.Errorf("holdout accuracy %.3f, want >= 0.75", acc)
	}
}
