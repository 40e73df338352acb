package inspect

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

//go:embed lexicon.yaml
var lexiconYAML []byte

// lexiconFile is the shape of lexicon.yaml.
type lexiconFile struct {
	Version   int              `yaml:"version"`
	Stopwords []string         `yaml:"stopwords"`
	Concepts  []lexiconConcept `yaml:"concepts"`
}

type lexiconConcept struct {
	Name    string   `yaml:"name"`
	Effects []string `yaml:"effects"`
	Words   []string `yaml:"words"`
	Phrases []string `yaml:"phrases"`
	// Ambiguous words are also nouns ("email", "invoice", "post"): they
	// grant the concept's effects only in verb position (first word of a
	// clause, or after "to").
	Ambiguous  []string `yaml:"ambiguous"`
	Tools      []string `yaml:"tools"`
	Operations []string `yaml:"operations"`
}

// parseLexicon decodes a lexicon strictly (unknown keys are errors).
func parseLexicon(b []byte) (lexiconFile, error) {
	var f lexiconFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("lexicon.yaml: %w", err)
	}
	if f.Version != 1 {
		return f, fmt.Errorf("lexicon.yaml: version %d: want 1", f.Version)
	}
	for i, c := range f.Concepts {
		if c.Name == "" {
			return f, fmt.Errorf("lexicon.yaml: concepts[%d]: name is required", i)
		}
	}
	return f, nil
}

// lexTokens splits s into lower-case alphanumeric tokens, also splitting
// camelCase ("postMessage" → "post", "message").
func lexTokens(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	var prev rune
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if unicode.IsUpper(r) && unicode.IsLower(prev) {
				flush()
			}
			cur = append(cur, r)
		default:
			flush()
		}
		prev = r
	}
	flush()
	return out
}

// lexStem is a light Porter-style suffix stripper, applied twice: British
// -ise spellings become -ize, then one of -ies, -sses, -ing, -ed, -ment,
// -ation, -ly, -s is removed, a doubled final consonant is undoubled and a
// final -e dropped.
// It only needs to map an intent word and the lexicon's base form to the
// same stem.
func lexStem(w string) string {
	// Two rounds: "payments" → "payment" → "pay".
	return lexStem1(lexStem1(w))
}

func lexStem1(w string) string {
	if len(w) <= 3 {
		return w
	}
	for _, s := range [][2]string{{"isation", "ization"}, {"ising", "izing"}, {"ised", "ized"}, {"ises", "izes"}, {"ise", "ize"}, {"yse", "yze"}} {
		if strings.HasSuffix(w, s[0]) && len(w) > len(s[0])+2 {
			w = strings.TrimSuffix(w, s[0]) + s[1]
			break
		}
	}
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "sses"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ation") && len(w) > 7:
		w = w[:len(w)-5]
	case strings.HasSuffix(w, "ment") && len(w) > 6:
		w = w[:len(w)-4]
	case strings.HasSuffix(w, "ing") && len(w) > 5:
		w = w[:len(w)-3]
	case strings.HasSuffix(w, "ed") && len(w) > 4:
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ly") && len(w) > 5:
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		w = w[:len(w)-1]
	}
	if n := len(w); n > 3 && w[n-1] == w[n-2] && !strings.ContainsRune("aeiousz", rune(w[n-1])) {
		w = w[:n-1]
	}
	if n := len(w); n > 4 && w[n-1] == 'e' {
		w = w[:n-1]
	}
	return w
}
