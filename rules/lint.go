package rules

import (
	"fmt"
	"slices"
	"strings"
)

// LintKind names what a lint finding is about.
type LintKind string

// Lint finding kinds.
const (
	// LintShadowed: the rule can never decide, because an earlier rule of
	// the same step, at the same or a higher priority, matches everything
	// it matches.
	LintShadowed LintKind = "shadowed"
	// LintUnknownTool: no loaded rule pack defines the tool/operation.
	LintUnknownTool LintKind = "unknown_tool"
	// LintUnknownField: a path names a field the action, context or
	// signals contract does not have.
	LintUnknownField LintKind = "unknown_field"
)

// LintFinding is one problem `aarm policy lint` reports. Findings are
// warnings: the policy loads and runs; they point at rules that do not do
// what their author probably meant.
type LintFinding struct {
	Kind     LintKind `json:"kind"`
	Rule     string   `json:"rule"`
	Position string   `json:"position"`
	Message  string   `json:"message"`
}

// String formats the finding as "file:line: kind: rule id: message".
func (f LintFinding) String() string {
	return fmt.Sprintf("%s: %s: rule %s: %s", f.Position, f.Kind, f.Rule, f.Message)
}

// The top-level keys of the context and signals contract (docs/policy.md).
var (
	lintContextKeys = []string{"intent", "scope", "session", "data_classification", "data_tags", "tools_used", "prior_actions", "facts"}
	lintSignalKeys  = []string{"dlp", "taint", "destination_provenance", "alignment", "drift", "scope_expansion", "classification_escalation", "velocity"}
)

// LintPolicy reports rules that can never decide (shadowed by a broader
// rule of the same step at the same or higher priority), tools and
// operations no loaded rule pack defines, and paths outside the context and
// signals contract. known reports whether the loaded packs define an action
// with that tool and operation; both may be globs ("*" matches any run of
// characters) and operation "" means any — PolicyGlobMatch implements the
// matching. A nil known skips the tool check.
func LintPolicy(p *Policy, known func(tool, operation string) bool) []LintFinding {
	var out []LintFinding
	add := func(r *PolicyRule, k LintKind, format string, args ...any) {
		out = append(out, LintFinding{Kind: k, Rule: r.ID, Position: p.position(r), Message: fmt.Sprintf(format, args...)})
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		for j := range p.Rules {
			e := &p.Rules[j]
			if i == j || e.Class != r.Class || e.Priority < r.Priority {
				continue
			}
			// At equal priority only an earlier rule shadows (the later
			// one then only ever agrees with it, or conflicts → DEFER).
			if e.Priority == r.Priority && j > i {
				continue
			}
			if policyMatchCovers(e, r) {
				what := "always takes precedence"
				if e.Priority == r.Priority && e.Action != r.Action {
					what = "disagrees at the same priority, so every match DEFERs"
				}
				add(r, LintShadowed, "unreachable: rule %s (%s) matches everything this rule matches and %s", e.ID, p.position(e), what)
				break
			}
		}
		if known != nil {
			tools, ops := r.Match.Tool, r.Match.Operation
			if len(tools) == 0 && len(ops) > 0 {
				tools = []string{"*"}
			}
			for _, t := range tools {
				if len(ops) == 0 {
					if !known(t, "") {
						add(r, LintUnknownTool, "no loaded rule pack defines tool %q", t)
					}
					continue
				}
				for _, o := range ops {
					if !known(t, o) {
						if t == "*" {
							add(r, LintUnknownTool, "no loaded rule pack defines an operation %q", o)
						} else {
							add(r, LintUnknownTool, "no loaded rule pack defines %s %q", t, o)
						}
					}
				}
			}
		}
		for _, c := range r.Match.Context {
			if top, _, _ := strings.Cut(c.Path, "."); !slices.Contains(lintContextKeys, top) {
				add(r, LintUnknownField, "match.context.%s: context has no key %q (known: %s)", c.Path, top, strings.Join(lintContextKeys, ", "))
			}
		}
		for _, c := range r.Match.RiskSignals {
			if top, _, _ := strings.Cut(c.Path, "."); !slices.Contains(lintSignalKeys, top) {
				add(r, LintUnknownField, "match.risk_signals.%s: signals have no key %q (known: %s)", c.Path, top, strings.Join(lintSignalKeys, ", "))
			}
		}
		for _, ref := range r.whenRefs {
			parts := strings.SplitN(ref, ".", 3)
			if len(parts) < 2 {
				continue
			}
			var keys []string
			switch parts[0] {
			case "action":
				keys = actionCELFields
			case "identity":
				keys = identityCELFields
			case "context":
				keys = lintContextKeys
			case "signals":
				keys = lintSignalKeys
			}
			if keys != nil && !slices.Contains(keys, parts[1]) {
				add(r, LintUnknownField, "when: %s.%s is not a known field (known: %s)", parts[0], parts[1], strings.Join(keys, ", "))
			}
		}
	}
	return out
}

// policyMatchCovers reports whether every action rule b matches is also
// matched by rule a, judged conservatively from the rules' text: a has no
// `when`, no constraints, and each of its match parts is absent or at least
// as broad as b's. A rule b with constraints is never covered: when its
// constraint bites it decides in the context-dependent deny step.
func policyMatchCovers(a, b *PolicyRule) bool {
	if a.when != nil || a.Constraints.Rate != nil || len(a.Constraints.Parameters) > 0 || a.Threshold > 0 || a.ConfidenceFrom != "" {
		return false
	}
	if b.Constraints.Rate != nil || len(b.Constraints.Parameters) > 0 {
		return false
	}
	if !globsCover(a.Match.Tool, b.Match.Tool) || !globsCover(a.Match.Operation, b.Match.Operation) {
		return false
	}
	if len(a.Match.Effect) > 0 {
		if len(b.Match.Effect) == 0 {
			return false
		}
		for _, e := range b.Match.Effect {
			if !slices.Contains(a.Match.Effect, e) {
				return false
			}
		}
	}
	for _, pair := range [][2][]Condition{
		{a.Match.Target, b.Match.Target}, {a.Match.Destination, b.Match.Destination},
		{a.Match.Parameters, b.Match.Parameters}, {a.Match.Context, b.Match.Context},
		{a.Match.RiskSignals, b.Match.RiskSignals},
	} {
		for _, ca := range pair[0] {
			if !slices.ContainsFunc(pair[1], func(cb Condition) bool { return conditionSame(ca, cb) }) {
				return false
			}
		}
	}
	return true
}

// globsCover reports whether the glob list a matches every name list b
// matches: a is empty (any), or each pattern of b (taken literally) is
// matched by some pattern of a.
func globsCover(a, b []string) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, pb := range b {
		ok := false
		for _, pa := range a {
			if pa == pb || PolicyGlobMatch(pa, pb) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func conditionSame(a, b Condition) bool {
	return a.Path == b.Path && a.Op == b.Op && a.Negate == b.Negate && fmt.Sprint(a.Value) == fmt.Sprint(b.Value)
}

// LintKnownFrom builds LintPolicy's known callback from the operations each
// tool defines (tool → operations, e.g. from the catalog's packs), with the
// policy language's glob matching on both names.
func LintKnownFrom(actions map[string][]string) func(tool, operation string) bool {
	return func(tool, operation string) bool {
		for tl, ops := range actions {
			if !PolicyGlobMatch(tool, tl) {
				continue
			}
			if operation == "" {
				return true
			}
			for _, o := range ops {
				if PolicyGlobMatch(operation, o) {
					return true
				}
			}
		}
		return false
	}
}
