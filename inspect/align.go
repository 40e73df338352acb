package inspect

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/aarmproxy/aarm"
)

// Align scores action a against the session's intent and declared scope
// (AARM R7). The components:
//
//   - Effect: 1 when the intent's verbs support the action's effect (write
//     is supported by any non-read verb; read by any intent); otherwise
//     read 0.8 (reads are rarely misaligned), write 0.3, send and execute
//     0.1, delete, spend and admin 0.
//   - Lexical: the larger of the share of the action's lexicon concepts
//     (from tool, operation and parameter keys) that the intent names, and
//     the share of the action's stems found in the intent; 0.5 when the
//     action has neither.
//   - Entity: per action entity (its entities and target), 1 when the
//     intent names it (or, for e-mail addresses and URLs, its domain; for a
//     target, an intent entity it lies under), 0 when the intent names other
//     entities of that kind, 0.5 when it names none; averaged. 0.5 when the
//     action has no entity.
//     A non-read action that names an entity of a kind the intent names,
//     but not one the intent names (another recipient, account or
//     repository), is capped at 0.45.
//   - Scope: 0.5 with no declared scope, 1 when an entry matches, 0 (and
//     ScopeExpansion) when none does.
//
// Adding a matching verb, or an entity the action names, to the intent never
// lowers the score, with one deliberate exception: when the action names
// several parties of one kind and the intent comes to name only some of
// them, the others now count as unnamed (the action reaches beyond what the
// user asked for).
func (m *IntentModel) Align(intent string, scope []string, a ActionDescriptor) Alignment {
	al := Alignment{Lexical: 0.5, Effect: 0.5, Entity: 0.5, Scope: 0.5}
	var why []string
	al.Scope, al.ScopeExpansion = alignScope(scope, a)
	switch {
	case len(scope) == 0:
	case al.ScopeExpansion:
		why = append(why, "outside declared scope")
	default:
		why = append(why, "within declared scope")
	}
	if strings.TrimSpace(intent) == "" {
		al.Score = 0.5
		if al.ScopeExpansion {
			al.Score = 0.25
		}
		al.Explanation = strings.Join(append(why, "no intent"), "; ")
		return al
	}
	al.HasIntent = true
	it := m.terms(intent)
	stems, concepts := m.actionTerms(a)

	// Effect.
	eff := a.Effect
	switch {
	case it.effects[eff] && eff != "":
		al.Effect = 1
		why = append(why, fmt.Sprintf("intent supports %s", eff))
	case eff == aarm.EffectRead:
		al.Effect = 1
		if !it.effects[aarm.EffectRead] {
			al.Effect = 0.8
		}
	case eff == aarm.EffectWrite && len(it.effects) > 0 && !(len(it.effects) == 1 && it.effects[aarm.EffectRead]):
		al.Effect = 1
	case eff == aarm.EffectWrite || eff == "":
		al.Effect = 0.3
		why = append(why, "write not asked for")
	case eff == aarm.EffectSend || eff == aarm.EffectExecute:
		al.Effect = 0.1
		why = append(why, fmt.Sprintf("%s not asked for", eff))
	default:
		al.Effect = 0
		why = append(why, fmt.Sprintf("%s not asked for", eff))
	}

	// Lexical.
	var cs, ss float64
	var shared []string
	if len(concepts) > 0 {
		n := 0
		for c := range concepts {
			if it.concepts[c] {
				n++
				shared = append(shared, c)
			}
		}
		cs = float64(n) / float64(len(concepts))
	}
	if len(stems) > 0 {
		n := 0
		for s := range stems {
			if it.stems[s] {
				n++
			}
		}
		ss = float64(n) / float64(len(stems))
	}
	if len(concepts) > 0 || len(stems) > 0 {
		al.Lexical = max(cs, ss)
	}
	slices.Sort(shared)
	if len(shared) > 0 {
		why = append(why, "shared concepts "+strings.Join(shared, ","))
	}

	// Entity.
	var elsewhere bool
	al.Entity, why, elsewhere = alignEntities(intent, a, why)

	s := alignWeightEffect*al.Effect + alignWeightLexical*al.Lexical + alignWeightEntity*al.Entity + alignWeightScope*al.Scope
	if al.Effect == 0 {
		s = min(s, alignUnsupportedCap)
	}
	if elsewhere && eff != aarm.EffectRead {
		s = min(s, alignElsewhereCap)
	}
	if al.ScopeExpansion {
		s /= 2
	}
	al.Score = min(max(s, 0), 1)
	al.Explanation = strings.Join(why, "; ")
	return al
}

// alignEntityGroup puts kinds that name the same sort of thing together.
func alignEntityGroup(k aarm.EntityKind) string {
	switch k {
	case aarm.EntityEmail, aarm.EntityRecipient, aarm.EntityDomain, aarm.EntityURL, aarm.EntityUser:
		return "party"
	case aarm.EntityRepo:
		return "repo"
	case aarm.EntityAccount:
		return "account"
	case aarm.EntityChannel:
		return "channel"
	}
	return string(k)
}

// alignEntities returns the entity component, the explanation so far and
// whether the intent names other entities of a kind the action uses (the
// action goes somewhere the user did not say).
func alignEntities(intent string, a ActionDescriptor, why []string) (float64, []string, bool) {
	ie := ExtractEntities(intent)
	if t := strings.ToLower(a.Tool); t == "github" || t == "gitlab" {
		// The action is about repositories: read bare "owner/repo" in the
		// intent even when it does not say "GitHub".
		ie = append(ie, ExtractEntities(intent+" (repo)")...)
	}
	lowIntent := strings.ToLower(intent)
	named := map[EntityRef]bool{}
	groups := map[string]bool{}
	for _, e := range ie {
		named[e] = true
		groups[alignEntityGroup(e.Kind)] = true
	}
	var ents []EntityRef
	for _, e := range a.Entities {
		ents = append(ents, NormalizeEntity(e))
	}
	target := strings.ToLower(strings.TrimSpace(a.Target))
	if target != "" && !slices.ContainsFunc(ents, func(e EntityRef) bool { return strings.EqualFold(e.Value, target) }) {
		ents = append(ents, EntityRef{Kind: "target", Value: target})
	}
	if len(ents) == 0 {
		return 0.5, why, false
	}
	total := 0.0
	var hit, miss []string
	for _, e := range ents {
		ok := named[e]
		if !ok && e.Value != "" {
			ok = strings.Contains(lowIntent, strings.ToLower(e.Value))
		}
		if !ok {
			if d := entityDomainOf(e); d != "" {
				ok = named[EntityRef{aarm.EntityDomain, d}]
			}
		}
		grp := alignEntityGroup(e.Kind)
		if e.Kind == "target" {
			grp = alignTargetGroup(a.Tool, target)
			ok = ok || alignTargetNamed(target, ie)
		}
		switch {
		case ok:
			total++
			hit = append(hit, e.Value)
		case groups[grp]:
			miss = append(miss, e.Value)
		default:
			total += 0.5
		}
	}
	if len(hit) > 0 {
		why = append(why, "intent names "+strings.Join(hit, ","))
	}
	if len(miss) > 0 {
		why = append(why, "intent does not name "+strings.Join(miss, ","))
	}
	return total / float64(len(ents)), why, len(miss) > 0
}

// alignTargetGroup guesses which entity group a target belongs to, so that
// an intent naming another repository (or recipient, or channel) counts
// against it; other targets are neutral when not named.
func alignTargetGroup(tool, target string) string {
	switch {
	case strings.Contains(target, "@"):
		return "party"
	case strings.HasPrefix(target, "#"):
		return "channel"
	case tool == "github" || tool == "gitlab":
		if parts := strings.Split(target, "/"); len(parts) >= 2 && parts[0] != "" && parts[1] != "" {
			return "repo"
		}
	}
	return "target"
}

// alignTargetNamed reports whether the action target is one of the intent's
// entities or lies under one ("acme/web/issues/3" and "acme/web#3" under
// "acme/web").
func alignTargetNamed(target string, ie []EntityRef) bool {
	for _, e := range ie {
		v := strings.ToLower(e.Value)
		if target == v || strings.HasPrefix(target, v+"/") || strings.HasPrefix(target, v+"#") {
			return true
		}
	}
	return false
}

// alignScope matches the action against declared scope entries of the form
// "tool", "tool:*", "tool:<effect>", "tool:<operation or its prefix>" or
// "tool:<target glob>" ("github:acme/*", "gmail:send", "slack:chat"). Tool
// "*" matches any tool.
func alignScope(scope []string, a ActionDescriptor) (float64, bool) {
	if len(scope) == 0 {
		return 0.5, false
	}
	tool, op, target := strings.ToLower(a.Tool), strings.ToLower(a.Operation), strings.ToLower(a.Target)
	for _, raw := range scope {
		st, rest, _ := strings.Cut(strings.ToLower(strings.TrimSpace(raw)), ":")
		if st != "*" && st != tool {
			continue
		}
		if rest == "" || rest == "*" || rest == string(a.Effect) || rest == op ||
			strings.HasPrefix(op, rest+".") || rest == target || strings.HasPrefix(target, rest+"/") || strings.HasPrefix(target, rest+"#") {
			return 1, false
		}
		if ok, _ := path.Match(rest, target); ok && target != "" {
			return 1, false
		}
	}
	return 0, true
}
