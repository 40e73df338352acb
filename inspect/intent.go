package inspect

import (
	"context"
	"math"
	"slices"
	"strings"

	"github.com/aarmproxy/aarm"
)

// IntentModel scores how well an action serves the session's stated intent
// (AARM R7, semantic distance). It is built once from the shipped lexicon
// (lexicon.yaml) and is immutable, so it is safe for concurrent use.
type IntentModel struct {
	stop     map[string]bool
	concepts []intentConcept
}

type intentConcept struct {
	name    string
	effects []aarm.Effect
	words   map[string]bool // stems
	amb     map[string]bool // stems that grant effects only in verb position
	phrases [][]string      // tokens
	tools   map[string]bool
	ops     map[string]bool // stems
}

// NewIntentModel returns the model built from the embedded lexicon. The
// lexicon is part of the binary and tested, so a parse failure is a build
// defect and panics.
func NewIntentModel() *IntentModel {
	f, err := parseLexicon(lexiconYAML)
	if err != nil {
		panic(err)
	}
	return newIntentModel(f)
}

func newIntentModel(f lexiconFile) *IntentModel {
	m := &IntentModel{stop: map[string]bool{}}
	for _, w := range f.Stopwords {
		m.stop[strings.ToLower(w)] = true
	}
	for _, c := range f.Concepts {
		ic := intentConcept{name: c.Name, words: map[string]bool{}, amb: map[string]bool{}, tools: map[string]bool{}, ops: map[string]bool{}}
		for _, e := range c.Effects {
			ic.effects = append(ic.effects, aarm.Effect(e))
		}
		for _, w := range c.Words {
			for _, t := range lexTokens(w) {
				ic.words[lexStem(t)] = true
			}
		}
		for _, w := range c.Ambiguous {
			for _, t := range lexTokens(w) {
				ic.words[lexStem(t)] = true
				ic.amb[lexStem(t)] = true
			}
		}
		for _, p := range c.Phrases {
			ic.phrases = append(ic.phrases, lexTokens(p))
		}
		for _, t := range c.Tools {
			ic.tools[strings.ToLower(t)] = true
		}
		for _, o := range c.Operations {
			for _, t := range lexTokens(o) {
				ic.ops[lexStem(t)] = true
			}
			ic.ops[lexStem(strings.ToLower(o))] = true
		}
		m.concepts = append(m.concepts, ic)
	}
	return m
}

// ActionDescriptor is what alignment looks at in an action: the mapped tool
// and operation (from the rule catalog, not from agent bytes), its effect,
// target, key parameters and entities.
type ActionDescriptor struct {
	Tool      string
	Operation string
	Effect    aarm.Effect
	Target    string
	// Params are key parameters; only their keys feed lexical overlap (the
	// values are agent-written and could be stuffed with intent words).
	Params   map[string]string
	Entities []EntityRef
}

// Alignment is the score of one action against the intent, with its
// components (each in [0,1]; 0.5 means "no evidence either way").
type Alignment struct {
	// Score is the weighted blend of the components, in [0,1]:
	// 0.35·Effect + 0.30·Lexical + 0.20·Entity + 0.15·Scope, capped at 0.35
	// when the effect is delete, spend or admin and unsupported by the
	// intent, capped at 0.45 when a non-read action goes to an entity other
	// than the ones the intent names, and halved on scope expansion.
	Score   float64
	Lexical float64
	Effect  float64
	Entity  float64
	Scope   float64
	// ScopeExpansion is true when a scope was declared and the action is
	// outside it (signals.scope_expansion).
	ScopeExpansion bool
	// HasIntent is false when the intent was empty: Score is then 0.5 and
	// carries no information; the gate leaves signals.alignment absent.
	HasIntent   bool
	Explanation string
}

// Alignment component weights and caps; documented in docs/context-checks.md.
const (
	alignWeightEffect   = 0.35
	alignWeightLexical  = 0.30
	alignWeightEntity   = 0.20
	alignWeightScope    = 0.15
	alignUnsupportedCap = 0.35
	alignElsewhereCap   = 0.45
)

// Embedder turns texts into vectors, for an optional semantic blend of the
// lexical alignment (an OpenAI-compatible /v1/embeddings client lives in the
// gate; off by default).
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Cosine returns the cosine similarity of two vectors (0 when either is zero
// or their lengths differ).
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / (math.Sqrt(na) * math.Sqrt(nb))
}

// BlendAlignment mixes the lexical score with an embedding cosine
// similarity: (1-weight)·lex.Score + weight·clamp(cosine, 0, 1). weight is
// clamped to [0,1]. The unsupported-effect cap of the lexical score still
// applies, so embeddings cannot talk a "summarise" intent into a delete.
func BlendAlignment(lex Alignment, cosine float64, weight float64) float64 {
	w := min(max(weight, 0), 1)
	c := min(max(cosine, 0), 1)
	s := (1-w)*lex.Score + w*c
	if lex.HasIntent && lex.Effect == 0 {
		s = min(s, alignUnsupportedCap)
	}
	return s
}

// intentTerms is an intent (or action) reduced to stems and concepts.
type intentTerms struct {
	stems    map[string]bool
	concepts map[string]bool
	effects  map[aarm.Effect]bool
}

func (m *IntentModel) terms(text string) intentTerms {
	t := intentTerms{stems: map[string]bool{}, concepts: map[string]bool{}, effects: map[aarm.Effect]bool{}}
	toks, verb := intentClauses(text)
	for i, tok := range toks {
		if m.stop[tok] {
			continue
		}
		s := lexStem(tok)
		t.stems[s] = true
		for _, c := range m.concepts {
			if !c.words[s] {
				continue
			}
			// An ambiguous word used as a noun names the thing, not the
			// deed: it neither grants the effect nor counts as the verb
			// concept ("summarise my emails" does not ask to send).
			if c.amb[s] && !verb[i] && len(c.effects) > 0 {
				continue
			}
			t.concepts[c.name] = true
			for _, e := range c.effects {
				t.effects[e] = true
			}
		}
	}
	for _, c := range m.concepts {
		if slices.ContainsFunc(c.phrases, func(p []string) bool { return intentPhrase(toks, p) }) {
			t.concepts[c.name] = true
			for _, e := range c.effects {
				t.effects[e] = true
			}
		}
	}
	return t
}

// intentVerbSkip are words that may precede the verb of a clause.
var intentVerbSkip = map[string]bool{"please": true, "also": true, "can": true, "could": true, "would": true, "you": true,
	"kindly": true, "now": true, "just": true, "i": true, "we": true, "want": true, "need": true, "go": true, "then": true,
	"and": true, "first": true, "finally": true, "next": true, "lets": true, "let's": true, "quickly": true}

// intentClauses tokenises text and marks the tokens in verb position: the
// first meaningful word of each clause (clauses end at punctuation and at
// "and", "then", "or", "but") and any word right after "to".
func intentClauses(text string) ([]string, map[int]bool) {
	var toks []string
	verb := map[int]bool{}
	for _, clause := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune(".,;:!?\n()", r) }) {
		first := true
		for _, tok := range lexTokens(clause) {
			switch {
			case tok == "and" || tok == "then" || tok == "or" || tok == "but":
				first = true
			case first && !intentVerbSkip[tok]:
				verb[len(toks)] = true
				first = false
			case len(toks) > 0 && toks[len(toks)-1] == "to":
				verb[len(toks)] = true
			}
			toks = append(toks, tok)
		}
	}
	return toks, verb
}

// intentPhrase reports whether the phrase's tokens occur in order in toks
// with at most two other tokens between consecutive ones ("let the team
// know" matches "let know").
func intentPhrase(toks, phrase []string) bool {
	if len(phrase) == 0 {
		return false
	}
	for i, tok := range toks {
		if tok != phrase[0] {
			continue
		}
		j, k := 1, i+1
		for j < len(phrase) && k < len(toks) && k-i <= 3*j {
			if toks[k] == phrase[j] {
				j++
			}
			k++
		}
		if j == len(phrase) {
			return true
		}
	}
	return false
}

// actionTerms returns the stems of the action's tool, operation and
// parameter keys, and the concepts they name.
func (m *IntentModel) actionTerms(a ActionDescriptor) (stems map[string]bool, concepts map[string]bool) {
	stems, concepts = map[string]bool{}, map[string]bool{}
	var toks []string
	toks = append(toks, lexTokens(a.Operation)...)
	for _, t := range lexTokens(a.Tool) {
		if t != "google" && t != "microsoft" {
			toks = append(toks, t)
		}
	}
	keys := make([]string, 0, len(a.Params))
	for k := range a.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		toks = append(toks, lexTokens(k)...)
	}
	for _, tok := range toks {
		if !m.stop[tok] && !alignGenericTokens[tok] {
			stems[lexStem(tok)] = true
		}
	}
	tool := strings.ToLower(a.Tool)
	for _, c := range m.concepts {
		hit := c.tools[tool]
		for s := range stems {
			if c.ops[s] || c.words[s] {
				hit = true
				break
			}
		}
		if hit {
			concepts[c.name] = true
		}
	}
	return stems, concepts
}

// alignGenericTokens carry no meaning about what an action does.
var alignGenericTokens = map[string]bool{"http": true, "https": true, "api": true, "v1": true, "v2": true, "v3": true, "generic": true, "request": true, "id": true, "body": true, "data": true, "method": true, "path": true}

// Calibrated thresholds (docs/context-checks.md, TestAlignCalibration and
// TestDriftSeparatesSequences): an action scoring under
// DefaultAlignmentThreshold is misaligned; a session whose drift EMA reaches
// DefaultDriftThreshold has drifted (the shipped policy DEFERs).
const (
	DefaultAlignmentThreshold = 0.5
	DefaultDriftThreshold     = 0.45
)
