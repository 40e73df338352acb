package rules

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/google/cel-go/interpreter"
)

// Input is everything Evaluate decides on. It is a snapshot: Evaluate reads
// it and never the clock, the network or the session store, so the same
// Input and Policy always give the same Decision.
type Input struct {
	Action aarm.Action
	// Context is the session's context snapshot (intent, scope, session,
	// data_classification, data_tags, tools_used, prior_actions, facts).
	// Absent keys mean "not yet populated".
	Context map[string]any
	// Signals are this action's risk signals (dlp, taint,
	// destination_provenance, alignment, drift, ...).
	Signals map[string]any
	// Identity is who stands behind the action, usually Action.Identity
	// (used when Identity is left empty).
	Identity aarm.Identity
	// Now is the decision time.
	Now time.Time
	// Rates counts earlier actions for rate constraints; nil counts zero
	// (and the Diagnostic says so).
	Rates RateCounter
}

// RateCounter counts the actions recorded under key within window before now.
type RateCounter interface {
	Count(key string, window time.Duration, now time.Time) int
}

// PolicyStep names the precedence step that decided (docs/policy.md).
type PolicyStep string

// The precedence steps, in the AARM order.
const (
	StepNoPolicy      PolicyStep = "no_policy"
	StepError         PolicyStep = "error"
	StepForbidden     PolicyStep = "forbidden"
	StepCompositional PolicyStep = "compositional"
	StepDefer         PolicyStep = "defer"
	StepContextDeny   PolicyStep = "context_dependent_deny"
	StepContextAllow  PolicyStep = "context_dependent_allow"
	StepStatic        PolicyStep = "static"
	StepDefault       PolicyStep = "default"
)

// Diagnostic explains a decision: which rules were considered, which
// matched, why the others were skipped, which step decided, where the
// deciding rule is written, and which rate keys to record.
type Diagnostic struct {
	Step PolicyStep `json:"step"`
	// Rule and Position ("policy.yaml:42") name the deciding rule.
	Rule     string            `json:"rule,omitempty"`
	Position string            `json:"position,omitempty"`
	Rules    []PolicyRuleTrace `json:"rules"`
	Notes    []string          `json:"notes,omitempty"`

	rateKeys []string
}

// PolicyRuleTrace is one rule's part in an evaluation.
type PolicyRuleTrace struct {
	Rule     string `json:"rule"`
	Position string `json:"position"`
	Matched  bool   `json:"matched"`
	// Skipped says why a rule did not match ("operation", "parameters.amount: gt 1000").
	Skipped string `json:"skipped,omitempty"`
	// Missing lists referenced context that is not yet populated.
	Missing []string `json:"missing,omitempty"`
	// Confidence is the rule's computed confidence when it matched.
	Confidence float64 `json:"confidence,omitempty"`
	// Constraint names the constraint that failed, turning the rule into DENY.
	Constraint string `json:"constraint,omitempty"`
}

// LogValue implements slog.LogValuer: the step, the deciding rule and its
// position, and how many rules matched — one compact group per decision.
func (d Diagnostic) LogValue() slog.Value {
	matched := 0
	for _, r := range d.Rules {
		if r.Matched {
			matched++
		}
	}
	return slog.GroupValue(
		slog.String("step", string(d.Step)),
		slog.String("rule", d.Rule),
		slog.String("position", d.Position),
		slog.Int("rules", len(d.Rules)),
		slog.Int("matched", matched),
	)
}

// RateKeys returns the keys the gate must Record when the action is let
// through (one per matching rule with a rate constraint).
func (d Diagnostic) RateKeys() []string { return slices.Clone(d.rateKeys) }

// ruleOutcome is one rule's evaluation.
type ruleOutcome struct {
	rule       *PolicyRule
	matched    bool     // everything matched and nothing is missing
	missing    []string // applies except for context not yet populated
	verdict    aarm.Verdict
	confidence float64
	constraint string // why a constraint turned the rule into DENY
	celErr     error
}

// stepClass is the class whose precedence step the outcome takes part in:
// a rule whose constraint bit (a rate limit, a parameter constraint) is a
// context-dependent DENY — allowed in general, not with this history.
func (o *ruleOutcome) stepClass() PolicyRuleClass {
	if o.constraint != "" && o.rule.Class != PolicyClassForbidden && o.rule.Class != PolicyClassCompositional {
		return PolicyClassContextDependentDeny
	}
	return o.rule.Class
}

type evalState struct {
	p        *Policy
	in       *Input
	diag     *Diagnostic
	celVars  interpreter.Activation
	align    *float64
	destHost string
}

// Evaluate decides one action under policy p, in the AARM precedence order:
// forbidden → compositional risk → DEFER (context not yet populated,
// same-priority disagreement, confidence under threshold, explicit
// context_dependent_defer rules) → context-dependent deny → context-dependent
// allow → static outcome → the policy default. It is pure: it does no I/O and
// reads no clock, and rule order in the file does not change the result
// (ties break on priority, then rule id).
//
// A nil policy or an expression that fails at run time yields DENY (fail closed).
func Evaluate(p *Policy, in Input) (aarm.Decision, Diagnostic) {
	diag := Diagnostic{}
	if p == nil {
		diag.Step = StepNoPolicy
		return aarm.Decision{Verdict: aarm.Deny, Reason: "no policy loaded (fail closed)", RiskLevel: aarm.RiskHigh, TimeoutAction: aarm.Deny}, diag
	}
	if in.Identity.Session == "" && in.Identity.Agent == "" && in.Identity.Human == "" && in.Identity.Service == "" {
		in.Identity = in.Action.Identity
	}
	diag.Rules = make([]PolicyRuleTrace, 0, len(p.Rules))
	st := &evalState{p: p, in: &in, diag: &diag, destHost: strings.ToLower(in.Action.Destination.Host)}
	if a, ok := policyLookup(in.Signals, "alignment"); ok {
		if f, ok := policyNumber(a); ok {
			st.align = &f
		}
	}
	if in.Rates == nil {
		diag.Notes = append(diag.Notes, "no rate counter: rate constraints counted 0 earlier actions")
	}
	outs := make([]ruleOutcome, len(p.Rules))
	for i := range p.Rules {
		outs[i] = st.evalRule(&p.Rules[i])
	}
	var failed []*ruleOutcome
	for i := range outs {
		if outs[i].celErr != nil {
			failed = append(failed, &outs[i])
		}
	}
	if len(failed) > 0 {
		// A rule that cannot be evaluated might have denied: fail closed.
		rankOutcomes(failed)
		o := failed[0]
		d := st.decide(o, aarm.Deny, "", StepError,
			fmt.Sprintf("rule %s: when expression failed: %v (fail closed)", o.rule.ID, o.celErr))
		return d, diag
	}
	byClass := func(cls ...PolicyRuleClass) []*ruleOutcome {
		var out []*ruleOutcome
		for i := range outs {
			if outs[i].matched && slices.Contains(cls, outs[i].stepClass()) {
				out = append(out, &outs[i])
			}
		}
		rankOutcomes(out)
		return out
	}

	// 1. Forbidden: a matching forbidden rule always denies.
	if m := byClass(PolicyClassForbidden); len(m) > 0 {
		o := m[0]
		return st.decide(o, aarm.Deny, aarm.ClassForbidden, StepForbidden, st.reason(o, "forbidden")), diag
	}
	// 2. Compositional risk: the most restrictive verdict at the top priority.
	if m := byClass(PolicyClassCompositional); len(m) > 0 {
		o := mostRestrictive(m)
		cls := aarm.ClassContextDependentDeny
		if o.verdict == aarm.Defer {
			cls = aarm.ClassContextDependentDefer
		}
		return st.decide(o, o.verdict, cls, StepCompositional, st.reason(o, "compositional risk")), diag
	}
	// 3. DEFER on uncertainty.
	if d, ok := st.deferStep(outs, byClass); ok {
		return d, diag
	}
	// 4. Context-dependent deny: a static allow whose context is misaligned.
	if m := byClass(PolicyClassContextDependentDeny); len(m) > 0 {
		o := mostRestrictive(m)
		return st.decide(o, o.verdict, aarm.ClassContextDependentDeny, StepContextDeny, st.reason(o, "context-dependent deny")), diag
	}
	// 5. Context-dependent allow: a static deny whose context is aligned →
	// STEP_UP (ALLOW only when the rule says so).
	if m := byClass(PolicyClassContextDependentAllow); len(m) > 0 {
		o := mostRestrictive(m)
		return st.decide(o, o.verdict, aarm.ClassContextDependentAllow, StepContextAllow, st.reason(o, "context-dependent allow")), diag
	}
	// 6. Static outcome.
	if m := byClass(PolicyClassStatic); len(m) > 0 {
		o := mostRestrictive(m)
		return st.decide(o, o.verdict, aarm.ClassStatic, StepStatic, st.reason(o, "")), diag
	}
	// 7. Configured default.
	diag.Step = StepDefault
	reason := p.DefaultReason
	if reason == "" {
		reason = fmt.Sprintf("no rule matched; policy default is %s", p.Default)
	}
	d := aarm.Decision{Verdict: p.Default, Reason: reason, Confidence: DefaultRuleConfidence, Alignment: st.align,
		RiskLevel: policyDefaultRisk(p.Default, ""), TimeoutAction: aarm.Deny, Policy: p.Ref()}
	switch p.Default {
	case aarm.StepUp:
		d.Timeout = aarm.Duration(DefaultStepUpTimeout)
	case aarm.Defer:
		d.Timeout = aarm.Duration(DefaultDeferTimeout)
		d.Classification = aarm.ClassContextDependentDefer
	}
	return d, diag
}

// deferStep runs the DEFER triggers of AARM R3 in a fixed order: a matching
// rule references context not yet populated; an explicit
// context_dependent_defer rule matched; the rules that would decide disagree
// at the same priority; a matching rule's confidence is under its threshold.
func (st *evalState) deferStep(outs []ruleOutcome, byClass func(...PolicyRuleClass) []*ruleOutcome) (aarm.Decision, bool) {
	var missing []*ruleOutcome
	for i := range outs {
		if len(outs[i].missing) > 0 {
			missing = append(missing, &outs[i])
		}
	}
	rankOutcomes(missing)
	if len(missing) > 0 {
		o := missing[0]
		return st.decide(o, aarm.Defer, aarm.ClassContextDependentDefer, StepDefer,
			fmt.Sprintf("context not yet populated: %s (rule %s needs it to decide)", strings.Join(o.missing, ", "), o.rule.ID)), true
	}
	if m := byClass(PolicyClassContextDependentDefer); len(m) > 0 {
		o := m[0]
		return st.decide(o, aarm.Defer, aarm.ClassContextDependentDefer, StepDefer, st.reason(o, "deferred")), true
	}
	// Disagreement: among the rules of the step that would decide, those at
	// its top priority must agree.
	for _, cls := range []PolicyRuleClass{PolicyClassContextDependentDeny, PolicyClassContextDependentAllow, PolicyClassStatic} {
		m := byClass(cls)
		if len(m) == 0 {
			continue
		}
		top := m[0]
		for _, o := range m[1:] {
			if o.rule.Priority != top.rule.Priority {
				break
			}
			// A rule whose constraint bit is a definite DENY, not a disagreement.
			if o.verdict != top.verdict && o.constraint == "" && top.constraint == "" {
				return st.decide(top, aarm.Defer, aarm.ClassContextDependentDefer, StepDefer,
					fmt.Sprintf("rules %s (%s) and %s (%s) apply at priority %d and disagree",
						top.rule.ID, top.verdict, o.rule.ID, o.verdict, top.rule.Priority)), true
			}
		}
		break
	}
	var low []*ruleOutcome
	for i := range outs {
		o := &outs[i]
		if o.matched && o.rule.Threshold > 0 && o.confidence < o.rule.Threshold {
			low = append(low, o)
		}
	}
	rankOutcomes(low)
	if len(low) > 0 {
		o := low[0]
		return st.decide(o, aarm.Defer, aarm.ClassContextDependentDefer, StepDefer,
			fmt.Sprintf("confidence %.2f is under the threshold %.2f of rule %s", o.confidence, o.rule.Threshold, o.rule.ID)), true
	}
	return aarm.Decision{}, false
}

// rankOutcomes orders by priority (high first), then rule id, so that the
// order of rules in the file never changes a decision.
func rankOutcomes(m []*ruleOutcome) {
	slices.SortStableFunc(m, func(a, b *ruleOutcome) int {
		if a.rule.Priority != b.rule.Priority {
			return b.rule.Priority - a.rule.Priority
		}
		return strings.Compare(a.rule.ID, b.rule.ID)
	})
}

var policyRestrictiveness = map[aarm.Verdict]int{aarm.Deny: 0, aarm.Defer: 1, aarm.StepUp: 2, aarm.Modify: 3, aarm.Allow: 4}

// mostRestrictive picks, among the top-priority rules of a ranked list, the
// one with the most restrictive verdict (ties: rule id).
func mostRestrictive(m []*ruleOutcome) *ruleOutcome {
	best := m[0]
	for _, o := range m[1:] {
		if o.rule.Priority != best.rule.Priority {
			break
		}
		if policyRestrictiveness[o.verdict] < policyRestrictiveness[best.verdict] {
			best = o
		}
	}
	return best
}

func (st *evalState) reason(o *ruleOutcome, what string) string {
	if o.constraint != "" {
		return o.constraint
	}
	if o.rule.Reason != "" {
		return o.rule.Reason
	}
	if what == "" {
		return fmt.Sprintf("rule %s matched", o.rule.ID)
	}
	return fmt.Sprintf("%s: rule %s matched", what, o.rule.ID)
}

func policyDefaultRisk(v aarm.Verdict, cls aarm.Classification) aarm.RiskLevel {
	if cls == aarm.ClassForbidden {
		return aarm.RiskCritical
	}
	switch v {
	case aarm.Allow:
		return aarm.RiskLow
	case aarm.Modify:
		return aarm.RiskMedium
	}
	return aarm.RiskHigh
}

// decide builds the decision for rule outcome o and records the step.
func (st *evalState) decide(o *ruleOutcome, v aarm.Verdict, cls aarm.Classification, step PolicyStep, reason string) aarm.Decision {
	r := o.rule
	st.diag.Step, st.diag.Rule, st.diag.Position = step, r.ID, st.p.position(r)
	d := aarm.Decision{
		Verdict: v, Classification: cls, Rule: r.ID, Reason: reason,
		RiskLevel: r.RiskLevel, Confidence: o.confidence, Alignment: st.align,
		TimeoutAction: aarm.Deny, Policy: st.p.Ref(),
	}
	if d.RiskLevel == "" {
		d.RiskLevel = policyDefaultRisk(v, cls)
	}
	if o.confidence == 0 && !o.matched {
		d.Confidence = r.Confidence
	}
	switch v {
	case aarm.Modify:
		d.Modifications = slices.Clone(r.Modifications)
	case aarm.StepUp, aarm.Defer:
		d.Approvers = slices.Clone(r.Approvers)
		d.Timeout = aarm.Duration(r.Timeout)
		if d.Timeout == 0 {
			d.Timeout = aarm.Duration(DefaultStepUpTimeout)
			if v == aarm.Defer {
				d.Timeout = aarm.Duration(DefaultDeferTimeout)
			}
		}
		if v == r.Action || v == aarm.Defer {
			d.TimeoutAction = r.TimeoutAction
			if v != aarm.Defer && d.TimeoutAction == aarm.StepUp {
				d.TimeoutAction = aarm.Deny
			}
		}
	}
	return d
}

// evalRule evaluates one rule's match, `when`, confidence and constraints.
func (st *evalState) evalRule(r *PolicyRule) ruleOutcome {
	o := ruleOutcome{rule: r, verdict: r.Action}
	tr := PolicyRuleTrace{Rule: r.ID, Position: st.p.position(r)}
	defer func() {
		tr.Matched, tr.Missing, tr.Constraint = o.matched, o.missing, o.constraint
		if o.matched {
			tr.Confidence = o.confidence
		}
		if o.celErr != nil {
			tr.Skipped = "when: " + o.celErr.Error()
		}
		st.diag.Rules = append(st.diag.Rules, tr)
	}()
	a := &st.in.Action
	m := &r.Match
	if len(m.tool) > 0 && !policyAnyGlob(m.tool, a.Tool) {
		tr.Skipped = "tool"
		return o
	}
	if len(m.operation) > 0 && !policyAnyGlob(m.operation, a.Operation) {
		tr.Skipped = "operation"
		return o
	}
	if len(m.Effect) > 0 && !slices.Contains(m.Effect, a.Effect) {
		tr.Skipped = "effect"
		return o
	}
	for i := range m.Target {
		c := &m.Target[i]
		if a.Target == "" || !policyEvalCondition(c, a.Target, st.p.InternalDomains, nil) {
			tr.Skipped = c.skip
			return o
		}
	}
	for i := range m.Destination {
		c := &m.Destination[i]
		ext := a.Destination.External
		if st.destHost == "" || !policyEvalCondition(c, st.destHost, st.p.InternalDomains, &ext) {
			tr.Skipped = c.skip
			return o
		}
	}
	for i := range m.Parameters {
		c := &m.Parameters[i]
		v, ok := policyLookup(a.Parameters, c.Path)
		if !st.presentHolds(c, v, ok) {
			tr.Skipped = c.skip
			return o
		}
	}
	var missing []string
	for _, group := range []struct {
		prefix string
		root   map[string]any
		conds  []Condition
	}{{"context.", st.in.Context, m.Context}, {"signals.", st.in.Signals, m.RiskSignals}} {
		for i := range group.conds {
			c := &group.conds[i]
			v, ok := policyLookup(group.root, c.Path)
			if !ok && c.Op != OpExists {
				missing = policyAppendUnique(missing, group.prefix+c.Path)
				continue
			}
			if !st.presentHolds(c, v, ok) {
				tr.Skipped = c.skip
				return o
			}
		}
	}
	if r.when != nil {
		ok, miss, err := st.evalWhen(r)
		switch {
		case err != nil:
			o.celErr = err
			return o
		case len(miss) > 0:
			for _, x := range miss {
				missing = policyAppendUnique(missing, x)
			}
		case !ok:
			tr.Skipped = "when"
			return o
		}
	}
	o.confidence = r.Confidence
	if r.ConfidenceFrom == "alignment" {
		if st.align == nil {
			missing = policyAppendUnique(missing, "signals.alignment")
		} else {
			o.confidence = r.Confidence * *st.align
		}
	}
	if len(missing) > 0 {
		o.missing = missing
		return o
	}
	o.matched = true
	st.applyConstraints(&o)
	return o
}

// presentHolds applies c to a value that may be absent: absence matches only
// `exists: false` (and `not: {exists: true}`).
func (st *evalState) presentHolds(c *Condition, v any, present bool) bool {
	if c.Op == OpExists {
		r := present == c.Value.(bool)
		if c.Negate {
			return !r
		}
		return r
	}
	if !present {
		return false
	}
	return policyEvalCondition(c, v, st.p.InternalDomains, nil)
}

func (st *evalState) applyConstraints(o *ruleOutcome) {
	r := o.rule
	for i := range r.Constraints.Parameters {
		c := &r.Constraints.Parameters[i]
		v, ok := policyLookup(st.in.Action.Parameters, c.Path)
		if !st.presentHolds(c, v, ok) {
			o.verdict = aarm.Deny
			o.constraint = fmt.Sprintf("constraint of rule %s failed: parameters.%s must satisfy %s", r.ID, c.Path, describeCondition(c))
			return
		}
	}
	if rt := r.Constraints.Rate; rt != nil {
		key := st.rateKey(r, rt)
		n := 0
		if st.in.Rates != nil {
			n = st.in.Rates.Count(key, rt.Window, st.in.Now)
		}
		if n >= rt.Max {
			o.verdict = aarm.Deny
			o.constraint = fmt.Sprintf("rate limit of rule %s exceeded: %d actions in the last %s per %s (max %d)",
				r.ID, n, rt.Window, strings.Join(rt.Per, "+"), rt.Max)
			return
		}
		st.diag.rateKeys = append(st.diag.rateKeys, key)
	}
}

// rateKey is "rate:<rule>:<dim>=<value>[:<dim>=<value>]".
func (st *evalState) rateKey(r *PolicyRule, rt *PolicyRate) string {
	var b strings.Builder
	b.WriteString("rate:")
	b.WriteString(r.ID)
	id := st.in.Identity
	for _, p := range rt.Per {
		var v string
		switch p {
		case "session":
			v = id.Session
		case "agent":
			v = id.Agent
		case "human":
			v = id.Human
		case "tool":
			v = st.in.Action.Tool
		}
		b.WriteString(":" + p + "=" + strconv.Quote(v))
	}
	return b.String()
}

func (st *evalState) evalWhen(r *PolicyRule) (bool, []string, error) {
	if st.celVars == nil {
		act, err := interpreter.NewActivation(map[string]any{
			"action":   actionCELMap(&st.in.Action),
			"context":  policyMap(st.in.Context),
			"signals":  policyMap(st.in.Signals),
			"identity": identityCELMap(st.in.Identity),
			"now":      st.in.Now,
		})
		if err != nil {
			return false, nil, err
		}
		st.celVars = act
	}
	out, _, err := r.when.Eval(st.celVars)
	if err != nil {
		if isCELMissingKey(err) {
			var miss []string
			for _, p := range r.whenRefs {
				root, rest, _ := strings.Cut(p, ".")
				var m map[string]any
				switch root {
				case "context":
					m = st.in.Context
				case "signals":
					m = st.in.Signals
				default:
					continue
				}
				if _, ok := policyLookup(m, rest); !ok {
					miss = policyAppendUnique(miss, p)
				}
			}
			if len(miss) > 0 {
				return false, miss, nil
			}
			// A missing action/identity key: the rule does not apply.
			return false, nil, nil
		}
		return false, nil, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, nil, fmt.Errorf("result is %v, not a bool", out.Type())
	}
	return b, nil, nil
}

func policyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func actionCELMap(a *aarm.Action) map[string]any {
	ents := make([]any, 0, len(a.Entities))
	for _, e := range a.Entities {
		ents = append(ents, map[string]any{"kind": string(e.Kind), "value": e.Value, "param": e.Param})
	}
	return map[string]any{
		"id": a.ID, "tool": a.Tool, "operation": a.Operation, "effect": string(a.Effect), "target": a.Target,
		"destination": map[string]any{"host": a.Destination.Host, "port": a.Destination.Port, "scheme": a.Destination.Scheme, "external": a.Destination.External},
		"method":      a.Method, "path": a.Path, "parameters": policyMap(a.Parameters), "entities": ents,
		"mapping": a.Mapping, "content_digest": a.ContentDigest,
	}
}

// actionCELFields are the keys of action in `when:` (for lint).
var actionCELFields = []string{"id", "tool", "operation", "effect", "target", "destination", "method", "path", "parameters", "entities", "mapping", "content_digest"}

// identityCELFields are the keys of identity in `when:`.
var identityCELFields = []string{"human", "service", "agent", "session", "scope", "delegation", "verified"}

func identityCELMap(id aarm.Identity) map[string]any {
	scope := make([]any, 0, len(id.Scope))
	for _, s := range id.Scope {
		scope = append(scope, s)
	}
	del := make([]any, 0, len(id.Delegation))
	for _, s := range id.Delegation {
		del = append(del, s)
	}
	return map[string]any{"human": id.Human, "service": id.Service, "agent": id.Agent, "session": id.Session,
		"scope": scope, "delegation": del, "verified": id.Verified}
}

func policyAnyGlob(gs []policyGlob, s string) bool {
	for _, g := range gs {
		if g.match(s) {
			return true
		}
	}
	return false
}

func policyAppendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func describeCondition(c *Condition) string {
	if c.desc != "" {
		return c.desc
	}
	s := fmt.Sprintf("%s %v", c.Op, c.Value)
	if c.Negate {
		return "not " + s
	}
	return s
}
