package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Policy defaults, named so that code, docs and the shipped policy agree
// (docs/policy.md).
const (
	// DefaultStepUpTimeout is how long a STEP_UP waits for an approver when
	// the rule names no timeout.
	DefaultStepUpTimeout = 5 * time.Minute
	// DefaultDeferTimeout is how long a DEFER waits for context when the
	// rule names no timeout.
	DefaultDeferTimeout = 2 * time.Minute
	// DefaultRuleConfidence is a rule's confidence when it does not say.
	DefaultRuleConfidence = 1.0
	// maxPolicyRules bounds the work one policy file can ask for.
	maxPolicyRules = 10000
	// maxRateWindow bounds sliding-window memory.
	maxRateWindow = 24 * time.Hour
)

// ErrInvalidPolicy is wrapped by every policy load error.
var ErrInvalidPolicy = errors.New("invalid policy")

// PolicyError is a policy problem at a place in a file. It prints as
// "policy.yaml:12:5: rules[3].match.operation: message".
type PolicyError struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

// Error formats the problem as "file:line:col: field: message".
func (e *PolicyError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalidPolicy) true.
func (e *PolicyError) Unwrap() error { return ErrInvalidPolicy }

// PolicyRuleClass is the AARM classification a rule declares. It decides the
// precedence step the rule takes part in (docs/policy.md "Evaluation order").
type PolicyRuleClass string

// Rule classifications. ClassStatic (the empty string) is a rule that decides
// on the action alone.
const (
	PolicyClassStatic                PolicyRuleClass = ""
	PolicyClassForbidden             PolicyRuleClass = "forbidden"
	PolicyClassCompositional         PolicyRuleClass = "compositional"
	PolicyClassContextDependentDeny  PolicyRuleClass = "context_dependent_deny"
	PolicyClassContextDependentAllow PolicyRuleClass = "context_dependent_allow"
	PolicyClassContextDependentDefer PolicyRuleClass = "context_dependent_defer"
)

// policyAllowedActions lists, per rule class, the actions a rule of that class may take.
var policyAllowedActions = map[PolicyRuleClass][]aarm.Verdict{
	PolicyClassStatic:                {aarm.Allow, aarm.Deny, aarm.Modify, aarm.StepUp, aarm.Defer},
	PolicyClassForbidden:             {aarm.Deny},
	PolicyClassCompositional:         {aarm.Deny, aarm.StepUp, aarm.Defer},
	PolicyClassContextDependentDeny:  {aarm.Deny, aarm.StepUp},
	PolicyClassContextDependentAllow: {aarm.StepUp, aarm.Allow},
	PolicyClassContextDependentDefer: {aarm.Defer},
}

// Policy is a parsed, validated and compiled AARM policy. It is immutable
// after ParsePolicy returns and safe for concurrent Evaluate calls.
type Policy struct {
	ID          string
	Version     string
	Description string
	// Default is the verdict when no rule decides (DENY when the file is silent).
	Default       aarm.Verdict
	DefaultReason string
	// InternalDomains are the organisation's own domains: the `external`
	// operator is true for anything outside them.
	InternalDomains []string
	Rules           []PolicyRule
	// File is the name the policy was parsed under.
	File string

	sha256  string
	usesCEL bool
}

// PolicyRule is one rule of a policy.
type PolicyRule struct {
	ID          string
	Description string
	Match       RuleMatch
	// When is an optional CEL expression over action, context, signals,
	// identity and now; the rule applies only when it is true.
	When        string
	Constraints PolicyConstraints
	Action      aarm.Verdict
	Class       PolicyRuleClass
	// Priority orders rules inside a precedence step; higher wins.
	Priority  int
	RiskLevel aarm.RiskLevel
	// Confidence is the rule's confidence (default 1.0); with
	// ConfidenceFrom "alignment" it is multiplied by signals.alignment.
	Confidence     float64
	ConfidenceFrom string
	// Threshold is the minimum confidence; under it the rule DEFERs.
	Threshold     float64
	Modifications []aarm.Modification
	Approvers     []string
	Timeout       time.Duration
	TimeoutAction aarm.Verdict
	Reason        string
	// Line and Column locate the rule in File.
	Line, Column int

	when     cel.Program
	whenRefs []string // static context./signals. paths the CEL expression reads
	pos      string   // "file:line", computed once
}

// RuleMatch is what an action and its context must look like for a rule to apply.
type RuleMatch struct {
	// Tool and Operation are glob lists ("*" matches any run of characters);
	// empty means any.
	Tool      []string
	Operation []string
	// Effect lists effects; empty means any.
	Effect      []aarm.Effect
	Target      []Condition
	Destination []Condition
	Parameters  []Condition
	Context     []Condition
	RiskSignals []Condition

	tool, operation []policyGlob
}

// policyGlob is a compiled glob with fast paths for the common shapes: a
// literal name and "prefix*".
type policyGlob struct {
	literal string
	prefix  string
	re      *regexp.Regexp
}

func (g policyGlob) match(s string) bool {
	switch {
	case g.re != nil:
		return g.re.MatchString(s)
	case g.prefix != "":
		return strings.HasPrefix(s, g.prefix)
	}
	return s == g.literal
}

// PolicyConstraints limit a matching rule's outcome: when a constraint fails
// the rule decides DENY and the reason says which constraint bit.
type PolicyConstraints struct {
	Rate       *PolicyRate
	Parameters []Condition
}

// PolicyRate is a sliding-window rate constraint.
type PolicyRate struct {
	Max    int
	Window time.Duration
	// Per lists the dimensions the count is kept by: session, agent, tool.
	Per []string
}

// Operator is a condition operator of the policy language.
type Operator string

// The operators (docs/policy.md "Operators").
const (
	OpEq              Operator = "eq"
	OpNe              Operator = "ne"
	OpGt              Operator = "gt"
	OpGte             Operator = "gte"
	OpLt              Operator = "lt"
	OpLte             Operator = "lte"
	OpIn              Operator = "in"
	OpContains        Operator = "contains"
	OpMatches         Operator = "matches"
	OpExternal        Operator = "external"
	OpDomainAllowlist Operator = "domain_allowlist"
	OpExists          Operator = "exists"
	// OpGlob is a glob match; a bare string under match.target or
	// match.destination means glob.
	OpGlob Operator = "glob"
)

var policyOperators = []Operator{OpEq, OpNe, OpGt, OpGte, OpLt, OpLte, OpIn, OpContains, OpMatches, OpExternal, OpDomainAllowlist, OpExists, OpGlob}

// Condition is one test of one value.
type Condition struct {
	// Path is the dotted path the value is read from (relative to the
	// action's parameters, the context or the signals).
	Path  string
	Op    Operator
	Value any
	// Negate is set by `not:`.
	Negate       bool
	Line, Column int

	re   *regexp.Regexp
	list []any
	desc string // describeCondition, computed once
	skip string // the Diagnostic's "skipped" text, computed once
}

// SHA256 returns the hex SHA-256 of the policy file's bytes.
func (p *Policy) SHA256() string { return p.sha256 }

// Ref returns the policy's identity for decisions and receipts.
func (p *Policy) Ref() aarm.PolicyRef {
	return aarm.PolicyRef{ID: p.ID, Version: p.Version, SHA256: p.sha256}
}

// Rule returns the rule with the given id.
func (p *Policy) Rule(id string) (*PolicyRule, bool) {
	for i := range p.Rules {
		if p.Rules[i].ID == id {
			return &p.Rules[i], true
		}
	}
	return nil, false
}

// position returns "file:line" of the rule.
func (p *Policy) position(r *PolicyRule) string {
	if r.pos != "" {
		return r.pos
	}
	return fmt.Sprintf("%s:%d", p.File, r.Line)
}

// ParsePolicy decodes, validates and compiles a policy file. Unknown keys,
// bad values, invalid regular expressions and CEL expressions that do not
// type-check are errors naming file:line:column and the field. filename is
// used in messages and positions.
func ParsePolicy(filename string, data []byte) (*Policy, error) {
	if filename == "" {
		filename = "policy.yaml"
	}
	sum := sha256.Sum256(data)
	pp := &policyParser{file: filename}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, pp.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &PolicyError{File: filename, Line: extra.Line, Column: extra.Column, Msg: "more than one YAML document; a policy file holds one"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	p := &Policy{File: filename, sha256: hex.EncodeToString(sum[:]), Default: aarm.Deny}
	pp.policy(root, p)
	if len(pp.errs) > 0 {
		return nil, errors.Join(pp.errs...)
	}
	return p, nil
}

var policyYAMLLine = regexp.MustCompile(`line (\d+):? (.*)`)

type policyParser struct {
	file string
	errs []error
	ids  map[string]int
}

func (pp *policyParser) yamlErr(err error) error {
	m := policyYAMLLine.FindStringSubmatch(err.Error())
	if m == nil {
		return &PolicyError{File: pp.file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	n, _ := strconv.Atoi(m[1])
	return &PolicyError{File: pp.file, Line: n, Column: 1, Msg: m[2]}
}

func (pp *policyParser) fail(n *yaml.Node, field, format string, args ...any) {
	e := &PolicyError{File: pp.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	pp.errs = append(pp.errs, e)
}

// fields walks a mapping node, reporting unknown and duplicate keys, and
// calls fn for each known key with its value node.
func (pp *policyParser) fields(n *yaml.Node, field string, known []string, fn func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		pp.fail(n, field, "must be a mapping, got %s", policyNodeKind(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			pp.fail(k, policyField(field, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		if known != nil && !slices.Contains(known, k.Value) {
			pp.fail(k, policyField(field, k.Value), "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		fn(k.Value, k, v)
	}
	return true
}

func policyField(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func policyNodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

func (pp *policyParser) str(n *yaml.Node, field string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		pp.fail(n, field, "must be a string, got %s", policyNodeKind(n))
		return ""
	}
	return n.Value
}

func (pp *policyParser) strList(n *yaml.Node, field string) []string {
	if n.Kind == yaml.ScalarNode {
		s := pp.str(n, field)
		if s == "" {
			pp.fail(n, field, "must not be empty")
			return nil
		}
		return []string{s}
	}
	if n.Kind != yaml.SequenceNode {
		pp.fail(n, field, "must be a string or a list of strings, got %s", policyNodeKind(n))
		return nil
	}
	var out []string
	for i, c := range n.Content {
		s := pp.str(c, fmt.Sprintf("%s[%d]", field, i))
		if s == "" {
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		pp.fail(n, field, "must not be an empty list")
	}
	return out
}

func (pp *policyParser) float(n *yaml.Node, field string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		f, err := strconv.ParseFloat(n.Value, 64)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	pp.fail(n, field, "must be a number, got %s", policyNodeKind(n))
	return 0, false
}

func (pp *policyParser) integer(n *yaml.Node, field string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		i, err := strconv.Atoi(n.Value)
		if err == nil && i > -1e9 && i < 1e9 {
			return i, true
		}
	}
	pp.fail(n, field, "must be an integer, got %s", policyNodeKind(n))
	return 0, false
}

func (pp *policyParser) duration(n *yaml.Node, field string) time.Duration {
	s := pp.str(n, field)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		pp.fail(n, field, "%q is not a positive duration (write e.g. 30s, 5m, 1h)", s)
		return 0
	}
	return d
}

func (pp *policyParser) verdict(n *yaml.Node, field string) (aarm.Verdict, bool) {
	s := pp.str(n, field)
	if s == "" {
		return aarm.Deny, false
	}
	v, err := aarm.ParseVerdict(s)
	if err != nil {
		pp.fail(n, field, "unknown action %q (want allow, deny, modify, step_up or defer)", s)
		return aarm.Deny, false
	}
	return v, true
}

// value decodes any YAML node into plain Go values (map[string]any, []any,
// string, float64, bool, nil): the same shapes the gate hands Evaluate.
func (pp *policyParser) value(n *yaml.Node, field string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		pp.fail(n, field, "%v", err)
		return nil
	}
	return policyNormalizeYAML(v)
}

func policyNormalizeYAML(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case map[string]any:
		for k, e := range x {
			x[k] = policyNormalizeYAML(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = policyNormalizeYAML(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = policyNormalizeYAML(e)
		}
		return x
	}
	return v
}

func (pp *policyParser) policy(root *yaml.Node, p *Policy) {
	if root.Kind != yaml.MappingNode {
		pp.fail(root, "", "a policy file is a mapping with `policy:` and `rules:`, got %s", policyNodeKind(root))
		return
	}
	var head, rules *yaml.Node
	pp.fields(root, "", []string{"policy", "rules"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "policy":
			head = v
		case "rules":
			rules = v
		}
	})
	if head == nil {
		pp.fail(root, "policy", "missing: write `policy: {id: ..., version: ..., default: deny}`")
	} else {
		pp.header(head, p)
	}
	if rules == nil || (rules.Kind == yaml.ScalarNode && rules.Tag == "!!null") {
		return
	}
	if rules.Kind != yaml.SequenceNode {
		pp.fail(rules, "rules", "must be a list of rules, got %s", policyNodeKind(rules))
		return
	}
	if len(rules.Content) > maxPolicyRules {
		pp.fail(rules, "rules", "%d rules is more than the limit of %d", len(rules.Content), maxPolicyRules)
		return
	}
	pp.ids = map[string]int{}
	env, err := policyCELEnv()
	if err != nil {
		pp.fail(rules, "rules", "CEL environment: %v", err)
		return
	}
	for i, rn := range rules.Content {
		r, ok := pp.rule(rn, fmt.Sprintf("rules[%d]", i), env)
		if ok {
			if r.when != nil {
				p.usesCEL = true
			}
			p.Rules = append(p.Rules, r)
		}
	}
}

func (pp *policyParser) header(n *yaml.Node, p *Policy) {
	var haveID, haveVersion bool
	pp.fields(n, "policy", []string{"id", "version", "description", "default", "default_reason", "internal_domains"}, func(key string, k, v *yaml.Node) {
		f := "policy." + key
		switch key {
		case "id":
			p.ID, haveID = pp.str(v, f), true
		case "version":
			p.Version, haveVersion = pp.str(v, f), true
		case "description":
			p.Description = pp.str(v, f)
		case "default":
			d, ok := pp.verdict(v, f)
			if ok && d == aarm.Modify {
				pp.fail(v, f, "modify cannot be a default (it has no edits); use allow, deny, step_up or defer")
			}
			p.Default = d
		case "default_reason":
			p.DefaultReason = pp.str(v, f)
		case "internal_domains":
			for i, d := range pp.strList(v, f) {
				d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "."))
				if d == "" || strings.ContainsAny(d, "/@ *") {
					pp.fail(v, fmt.Sprintf("%s[%d]", f, i), "%q is not a domain name", d)
					continue
				}
				p.InternalDomains = append(p.InternalDomains, d)
			}
		}
	})
	if !haveID || p.ID == "" {
		pp.fail(n, "policy.id", "missing: name the policy (it goes into every receipt)")
	}
	if !haveVersion || p.Version == "" {
		pp.fail(n, "policy.version", "missing: give the policy a version (it goes into every receipt)")
	}
}

var policyRuleKeys = []string{"id", "name", "description", "match", "when", "constraints", "action", "classification",
	"priority", "risk_level", "confidence", "confidence_from", "threshold", "modifications", "approvers",
	"timeout", "timeout_action", "reason"}

var policyRuleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$`)

func (pp *policyParser) rule(n *yaml.Node, field string, env *cel.Env) (PolicyRule, bool) {
	r := PolicyRule{Line: n.Line, Column: n.Column, Confidence: DefaultRuleConfidence, TimeoutAction: aarm.Deny,
		pos: fmt.Sprintf("%s:%d", pp.file, n.Line)}
	before := len(pp.errs)
	var haveAction bool
	var actionNode, modsNode, taNode *yaml.Node
	if !pp.fields(n, field, policyRuleKeys, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "id":
			r.ID = pp.str(v, f)
			if r.ID != "" && !policyRuleIDPattern.MatchString(r.ID) {
				pp.fail(v, f, "%q is not a valid rule id (letters, digits, _ . : / -)", r.ID)
			}
			if first, dup := pp.ids[r.ID]; dup && r.ID != "" {
				pp.fail(v, f, "duplicate rule id %q (first at line %d)", r.ID, first)
			} else {
				pp.ids[r.ID] = v.Line
			}
		case "name", "description":
			r.Description = pp.str(v, f)
		case "match":
			pp.match(v, f, &r.Match)
		case "when":
			r.When = pp.str(v, f)
			if r.When != "" {
				prg, refs, err := compileCEL(env, r.When)
				if err != nil {
					pp.fail(v, f, "%v", err)
				}
				r.when, r.whenRefs = prg, refs
			}
		case "constraints":
			pp.constraints(v, f, &r.Constraints)
		case "action":
			r.Action, haveAction = pp.verdict(v, f)
			actionNode = v
		case "classification":
			c := PolicyRuleClass(pp.str(v, f))
			if c == "static" {
				c = PolicyClassStatic
			}
			if _, ok := policyAllowedActions[c]; !ok {
				pp.fail(v, f, "unknown classification %q (want forbidden, compositional, context_dependent_deny, context_dependent_allow, context_dependent_defer, or omit it for a static rule)", c)
			}
			r.Class = c
		case "priority":
			r.Priority, _ = pp.integer(v, f)
		case "risk_level":
			l := aarm.RiskLevel(pp.str(v, f))
			if _, ok := policyRiskOrdinal[string(l)]; !ok {
				pp.fail(v, f, "unknown risk level %q (want low, medium, high or critical)", l)
			}
			r.RiskLevel = l
		case "confidence":
			c, ok := pp.float(v, f)
			if ok && (c < 0 || c > 1) {
				pp.fail(v, f, "%v is outside 0..1", c)
			}
			r.Confidence = c
		case "confidence_from":
			r.ConfidenceFrom = pp.str(v, f)
			if r.ConfidenceFrom != "alignment" {
				pp.fail(v, f, "unknown source %q (the only one is alignment)", r.ConfidenceFrom)
			}
		case "threshold":
			t, ok := pp.float(v, f)
			if ok && (t < 0 || t > 1) {
				pp.fail(v, f, "%v is outside 0..1", t)
			}
			r.Threshold = t
		case "modifications":
			modsNode = v
			r.Modifications = pp.modifications(v, f)
		case "approvers":
			r.Approvers = pp.strList(v, f)
		case "timeout":
			r.Timeout = pp.duration(v, f)
		case "timeout_action":
			taNode = v
			ta, ok := pp.verdict(v, f)
			if ok {
				switch ta {
				case aarm.Deny, aarm.StepUp:
				case aarm.Allow, aarm.Modify:
					pp.fail(v, f, "%s would let an unanswered hold through (fail open); use deny", strings.ToLower(ta.String()))
				default:
					pp.fail(v, f, "%s is not a terminal outcome; use deny (or step_up to escalate a DEFER)", strings.ToLower(ta.String()))
				}
			}
			r.TimeoutAction = ta
		case "reason":
			r.Reason = pp.str(v, f)
		}
	}) {
		return r, false
	}
	if r.ID == "" {
		pp.fail(n, field+".id", "missing: every rule needs an id (decisions and receipts name it)")
	}
	if !haveAction {
		if actionNode == nil {
			pp.fail(n, field+".action", "missing: write allow, deny, modify, step_up or defer")
		}
	} else if !slices.Contains(policyAllowedActions[r.Class], r.Action) {
		cls := string(r.Class)
		if cls == "" {
			cls = "static"
		}
		pp.fail(actionNode, field+".action", "%s is not allowed for a %s rule (allowed: %s)", strings.ToLower(r.Action.String()), cls, policyVerdictList(policyAllowedActions[r.Class]))
	}
	if haveAction && r.Action == aarm.Modify && len(r.Modifications) == 0 {
		pp.fail(n, field+".modifications", "a modify rule needs at least one modification")
	}
	if modsNode != nil && haveAction && r.Action != aarm.Modify {
		pp.fail(modsNode, field+".modifications", "only a modify rule applies modifications (action is %s)", strings.ToLower(r.Action.String()))
	}
	if taNode != nil && r.TimeoutAction == aarm.StepUp && r.Action != aarm.Defer {
		pp.fail(taNode, field+".timeout_action", "step_up on timeout only escalates a DEFER; use deny")
	}
	return r, len(pp.errs) == before
}

func policyVerdictList(vs []aarm.Verdict) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strings.ToLower(v.String())
	}
	return strings.Join(s, ", ")
}

// setSkipTexts precomputes the Diagnostic text for each condition, so that
// evaluation does not build strings for rules that do not match.
func (m *RuleMatch) setSkipTexts() {
	for _, g := range []struct {
		prefix string
		conds  []Condition
	}{{"target: ", m.Target}, {"destination: ", m.Destination}, {"parameters.", m.Parameters}, {"context.", m.Context}, {"signals.", m.RiskSignals}} {
		for i := range g.conds {
			c := &g.conds[i]
			if strings.HasSuffix(g.prefix, ".") {
				c.skip = g.prefix + c.Path + ": " + describeCondition(c)
			} else {
				c.skip = g.prefix + describeCondition(c)
			}
		}
	}
}

func (pp *policyParser) match(n *yaml.Node, field string, m *RuleMatch) {
	defer m.setSkipTexts()
	pp.fields(n, field, []string{"tool", "operation", "effect", "target", "destination", "parameters", "context", "risk_signals"}, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "tool":
			m.Tool = pp.strList(v, f)
			m.tool = pp.globs(v, f, m.Tool)
		case "operation":
			m.Operation = pp.strList(v, f)
			m.operation = pp.globs(v, f, m.Operation)
		case "effect":
			for _, e := range pp.strList(v, f) {
				if !aarm.Effect(e).Valid() {
					pp.fail(v, f, "unknown effect %q (want one of read, write, send, execute, delete, spend, admin)", e)
					continue
				}
				m.Effect = append(m.Effect, aarm.Effect(e))
			}
		case "target", "destination":
			var conds []Condition
			if v.Kind == yaml.MappingNode {
				conds = pp.condition(v, f, key)
			} else {
				for _, g := range pp.strList(v, f) {
					re, err := compilePolicyGlob(g)
					if err != nil {
						pp.fail(v, f, "%v", err)
						continue
					}
					conds = append(conds, Condition{Path: key, Op: OpGlob, Value: g, Line: v.Line, Column: v.Column, re: re, desc: "glob " + g})
				}
				if len(conds) > 1 {
					// A list of globs means any of them: one `glob` condition with a list.
					var vals []any
					var res []string
					for _, c := range conds {
						vals = append(vals, c.Value)
						res = append(res, "(?:"+c.re.String()+")")
					}
					conds = []Condition{{Path: key, Op: OpGlob, Value: vals, Line: v.Line, Column: v.Column, re: regexp.MustCompile(strings.Join(res, "|")),
						desc: fmt.Sprintf("glob %v", vals)}}
				}
			}
			if key == "target" {
				m.Target = conds
			} else {
				m.Destination = conds
			}
		case "parameters":
			m.Parameters = pp.conditions(v, f)
		case "context":
			m.Context = pp.conditions(v, f)
		case "risk_signals":
			m.RiskSignals = pp.conditions(v, f)
		}
	})
}

func (pp *policyParser) globs(n *yaml.Node, field string, pats []string) []policyGlob {
	var out []policyGlob
	for _, g := range pats {
		re, err := compilePolicyGlob(g)
		if err != nil {
			pp.fail(n, field, "%v", err)
			continue
		}
		meta := strings.IndexAny(g, "*?[")
		switch {
		case meta < 0:
			out = append(out, policyGlob{literal: g})
		case meta == len(g)-1 && g[meta] == '*' && meta > 0:
			out = append(out, policyGlob{prefix: g[:meta]})
		default:
			out = append(out, policyGlob{re: re})
		}
	}
	return out
}

var policyPathPattern = regexp.MustCompile(`^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$`)

// conditions reads a mapping of dotted path → condition.
func (pp *policyParser) conditions(n *yaml.Node, field string) []Condition {
	var out []Condition
	pp.fields(n, field, nil, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		if !policyPathPattern.MatchString(key) {
			pp.fail(k, f, "%q is not a dotted path", key)
			return
		}
		out = append(out, pp.condition(v, f, key)...)
	})
	return out
}

// condition reads one condition: a scalar (eq), a list (in), or a mapping of
// operators (all must hold), where `not: {...}` negates its operators.
func (pp *policyParser) condition(n *yaml.Node, field, path string) []Condition {
	switch n.Kind {
	case yaml.ScalarNode:
		return pp.operator(n, field, path, OpEq, false)
	case yaml.SequenceNode:
		return pp.operator(n, field, path, OpIn, false)
	case yaml.MappingNode:
	default:
		pp.fail(n, field, "must be a value, a list or a mapping of operators, got %s", policyNodeKind(n))
		return nil
	}
	var out []Condition
	known := make([]string, 0, len(policyOperators)+1)
	for _, o := range policyOperators {
		known = append(known, string(o))
	}
	known = append(known, "not")
	pp.fields(n, field, known, func(key string, k, v *yaml.Node) {
		if key == "not" {
			if v.Kind != yaml.MappingNode {
				pp.fail(v, field+".not", "must be a mapping of operators, e.g. not: {domain_allowlist: [acme.com]}")
				return
			}
			pp.fields(v, field+".not", known[:len(known)-1], func(key string, k, vv *yaml.Node) {
				out = append(out, pp.operator(vv, field+".not."+key, path, Operator(key), true)...)
			})
			return
		}
		out = append(out, pp.operator(v, field+"."+key, path, Operator(key), false)...)
	})
	if len(out) == 0 && len(n.Content) == 0 {
		pp.fail(n, field, "an empty mapping tests nothing; write an operator such as eq or exists")
	}
	return out
}

func (pp *policyParser) operator(n *yaml.Node, field, path string, op Operator, negate bool) []Condition {
	c := Condition{Path: path, Op: op, Negate: negate, Line: n.Line, Column: n.Column}
	val := pp.value(n, field)
	c.Value = val
	switch op {
	case OpEq, OpNe:
		if n.Kind == yaml.MappingNode {
			pp.fail(n, field, "%s compares with a value or list, not a mapping", op)
			return nil
		}
	case OpGt, OpGte, OpLt, OpLte:
		if _, ok := policyNumber(val); ok {
			break
		}
		if s, ok := val.(string); ok {
			if _, ok := policyOrdinal(s); ok {
				break
			}
		}
		pp.fail(n, field, "%s needs a number or an ordered name (PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED; low, medium, high, critical), got %s", op, policyNodeKind(n))
		return nil
	case OpIn, OpDomainAllowlist:
		list, ok := val.([]any)
		if !ok {
			if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
				list = []any{val}
			} else {
				pp.fail(n, field, "%s needs a list, got %s", op, policyNodeKind(n))
				return nil
			}
		}
		if len(list) == 0 {
			pp.fail(n, field, "%s needs a non-empty list", op)
			return nil
		}
		if op == OpDomainAllowlist {
			for i, d := range list {
				s, ok := d.(string)
				if !ok || s == "" || strings.ContainsAny(s, "/@ ") {
					pp.fail(n, fmt.Sprintf("%s[%d]", field, i), "%v is not a domain name", d)
					return nil
				}
				list[i] = strings.ToLower(strings.TrimPrefix(s, "."))
			}
		}
		c.list = list
		c.Value = list
	case OpContains:
		if n.Kind == yaml.MappingNode {
			pp.fail(n, field, "contains needs a value or a list of values")
			return nil
		}
		if l, ok := val.([]any); ok {
			c.list = l
		}
	case OpMatches:
		s, ok := val.(string)
		if !ok {
			pp.fail(n, field, "matches needs a regular expression string, got %s", policyNodeKind(n))
			return nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			pp.fail(n, field, "invalid regular expression: %v", err)
			return nil
		}
		c.re = re
	case OpGlob:
		s, ok := val.(string)
		if !ok {
			pp.fail(n, field, "glob needs a pattern string, got %s", policyNodeKind(n))
			return nil
		}
		re, err := compilePolicyGlob(s)
		if err != nil {
			pp.fail(n, field, "%v", err)
			return nil
		}
		c.re = re
	case OpExternal, OpExists:
		if _, ok := val.(bool); !ok {
			pp.fail(n, field, "%s needs true or false, got %s", op, policyNodeKind(n))
			return nil
		}
	default:
		pp.fail(n, field, "unknown operator %q", op)
		return nil
	}
	c.desc = describeCondition(&c)
	return []Condition{c}
}

func (pp *policyParser) constraints(n *yaml.Node, field string, c *PolicyConstraints) {
	pp.fields(n, field, []string{"rate", "parameters"}, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "parameters":
			c.Parameters = pp.conditions(v, f)
		case "rate":
			r := &PolicyRate{Per: []string{"session"}}
			var haveMax, haveWindow bool
			pp.fields(v, f, []string{"max", "window", "per"}, func(key string, k, v *yaml.Node) {
				ff := f + "." + key
				switch key {
				case "max":
					r.Max, haveMax = pp.integer(v, ff)
					if haveMax && r.Max < 1 {
						pp.fail(v, ff, "must be at least 1 (to forbid, use action: deny)")
					}
				case "window":
					r.Window, haveWindow = pp.duration(v, ff), true
					if r.Window > maxRateWindow {
						pp.fail(v, ff, "%s is longer than the limit of %s", r.Window, maxRateWindow)
					}
				case "per":
					r.Per = pp.strList(v, ff)
					for _, p := range r.Per {
						if p != "session" && p != "agent" && p != "tool" && p != "human" {
							pp.fail(v, ff, "unknown dimension %q (want session, agent, human or tool)", p)
						}
					}
				}
			})
			if !haveMax {
				pp.fail(v, f+".max", "missing")
			}
			if !haveWindow {
				pp.fail(v, f+".window", "missing")
			}
			c.Rate = r
		}
	})
}

var policyModificationKinds = []aarm.ModificationKind{aarm.ModSetJSON, aarm.ModDeleteJSON, aarm.ModCapJSON, aarm.ModSetQuery,
	aarm.ModDeleteQuery, aarm.ModSetHeader, aarm.ModDeleteHeader, aarm.ModRedact}

func (pp *policyParser) modifications(n *yaml.Node, field string) []aarm.Modification {
	if n.Kind != yaml.SequenceNode {
		pp.fail(n, field, "must be a list of edits, got %s", policyNodeKind(n))
		return nil
	}
	var out []aarm.Modification
	for i, mn := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		var m aarm.Modification
		var haveValue bool
		var valueNode *yaml.Node
		pp.fields(mn, f, []string{"kind", "path", "value", "required"}, func(key string, k, v *yaml.Node) {
			switch key {
			case "kind":
				m.Kind = aarm.ModificationKind(pp.str(v, f+".kind"))
				if !slices.Contains(policyModificationKinds, m.Kind) {
					pp.fail(v, f+".kind", "unknown edit %q (want one of body.set, body.delete, body.cap, query.set, query.delete, header.set, header.delete, redact)", m.Kind)
				}
			case "path":
				m.Path = pp.str(v, f+".path")
			case "value":
				m.Value, haveValue, valueNode = pp.value(v, f+".value"), true, v
			case "required":
				if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
					pp.fail(v, f+".required", "must be true or false")
				}
				m.Required = v.Value == "true"
			}
		})
		if m.Kind == "" {
			pp.fail(mn, f+".kind", "missing")
			continue
		}
		if m.Path == "" && m.Kind != aarm.ModRedact {
			pp.fail(mn, f+".path", "missing: %s needs a path", m.Kind)
		}
		switch m.Kind {
		case aarm.ModSetJSON, aarm.ModSetQuery, aarm.ModSetHeader:
			if !haveValue {
				pp.fail(mn, f+".value", "missing: %s needs a value", m.Kind)
			}
			if m.Kind != aarm.ModSetJSON && haveValue {
				if _, isMap := m.Value.(map[string]any); isMap {
					pp.fail(valueNode, f+".value", "%s needs a string", m.Kind)
				} else if _, isList := m.Value.([]any); isList {
					pp.fail(valueNode, f+".value", "%s needs a string", m.Kind)
				}
			}
		case aarm.ModCapJSON:
			x, ok := policyNumber(m.Value)
			if !haveValue || !ok || x < 0 || x != math.Trunc(x) {
				pp.fail(mn, f+".value", "body.cap needs a whole number ≥ 0")
			}
		}
		if m.Kind == aarm.ModSetHeader || m.Kind == aarm.ModDeleteHeader {
			if !policyHeaderName(m.Path) {
				pp.fail(mn, f+".path", "%q is not a header name", m.Path)
			}
		}
		out = append(out, m)
	}
	return out
}

func policyHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// compilePolicyGlob turns a glob into an anchored RE2: `*` matches any run of
// characters (dots and slashes included), `?` one character, `[...]` a class.
func compilePolicyGlob(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := strings.IndexByte(g[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("glob %q: unclosed [", g)
			}
			class := g[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			if class == "" || class == "^" {
				return nil, fmt.Errorf("glob %q: empty character class", g)
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", g, err)
	}
	return re, nil
}

// PolicyGlobMatch reports whether name matches the policy glob pattern, with
// the policy language's semantics (`*` matches any run of characters). It is
// exported for callers implementing the known() callback of LintPolicy.
func PolicyGlobMatch(pattern, name string) bool {
	re, err := compilePolicyGlob(pattern)
	return err == nil && re.MatchString(name)
}
