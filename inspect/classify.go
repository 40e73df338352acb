package inspect

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Level is a data classification level (AARM R2). Levels are ordered:
// PUBLIC < INTERNAL < CONFIDENTIAL < RESTRICTED. The zero value means
// "unknown" and sorts below every real level; callers that must assume the
// worst for unknown data (R2) use ClassifyOptions.Default.
type Level int

// The classification levels, lowest first.
const (
	LevelUnknown Level = iota
	LevelPublic
	LevelInternal
	LevelConfidential
	LevelRestricted
)

var levelNames = [...]string{
	LevelUnknown:      "UNKNOWN",
	LevelPublic:       "PUBLIC",
	LevelInternal:     "INTERNAL",
	LevelConfidential: "CONFIDENTIAL",
	LevelRestricted:   "RESTRICTED",
}

// ErrUnknownLevel is returned by ParseLevel for a name that is not a level.
var ErrUnknownLevel = errors.New("unknown classification level")

// String returns the upper-case level name used in policies ("CONFIDENTIAL").
func (l Level) String() string {
	if l >= 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel accepts a level name in any case. The empty string and
// "UNKNOWN" are rejected: configuration must name a real level.
func ParseLevel(s string) (Level, error) {
	n := strings.ToUpper(strings.TrimSpace(s))
	for i := LevelPublic; i <= LevelRestricted; i++ {
		if levelNames[i] == n {
			return i, nil
		}
	}
	return LevelUnknown, fmt.Errorf("%w %q (want one of PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED)", ErrUnknownLevel, s)
}

// MarshalText implements encoding.TextMarshaler.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Level) UnmarshalText(b []byte) error {
	p, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = p
	return nil
}

// Data tags attached to a classification.
const (
	TagPII         = "PII"
	TagSecret      = "SECRET"
	TagFinancial   = "FINANCIAL"
	TagHealth      = "HEALTH"
	TagCredentials = "CREDENTIALS"
	TagSourceCode  = "SOURCE_CODE"
)

// DataClass is the classification of one response: its level, its tags and
// the reasons that produced them.
type DataClass struct {
	Level   Level
	Tags    []string
	Reasons []string
	// Classified is false when no mechanism could classify the data and
	// Level is ClassifyOptions.Default (AARM R2: assume the highest).
	Classified bool
}

// ClassifyOptions configures Classify.
type ClassifyOptions struct {
	// Default is the level of data that no mechanism can classify. The zero
	// value means LevelRestricted, as AARM R2 requires.
	Default Level
	// HostLevels gives a baseline level per host. Keys are host names
	// ("api.github.com") or wildcard suffixes ("*.internal.example").
	HostLevels map[string]Level
	// PublicHosts are hosts whose data is PUBLIC unless a finding or content
	// heuristic says otherwise. Same key syntax as HostLevels.
	PublicHosts []string
}

// Classify decides the classification of a response from host, its fields
// and the DLP findings in them. Mechanisms, combined by taking the highest
// level and the union of tags:
//
//   - findings: secrets → RESTRICTED (SECRET, CREDENTIALS); SSN and card
//     numbers → RESTRICTED (PII, FINANCIAL for cards); IBANs and account
//     data → CONFIDENTIAL (FINANCIAL); other PII → CONFIDENTIAL (PII);
//   - content heuristics: sensitivity labels ("confidential", "internal
//     only"), health vocabulary, financial vocabulary, source code, and
//     repository visibility fields ("private": true / "visibility");
//   - host hints: HostLevels, then PublicHosts.
//
// When none applies, the data counts at opts.Default and Classified is false.
// A response with no non-empty field carries no data and is PUBLIC.
func Classify(host string, fields []Field, findings []Finding, opts ClassifyOptions) DataClass {
	var c classifier
	for _, f := range findings {
		c.finding(f)
	}
	empty := true
	for _, f := range fields {
		if strings.TrimSpace(f.Value) != "" {
			empty = false
		}
		c.content(f)
	}
	h := classifyHostname(host)
	if lvl, ok := classifyHostLevel(h, opts.HostLevels); ok {
		c.raise(lvl, "host "+h+" is configured "+lvl.String())
	} else if classifyHostMatches(h, opts.PublicHosts) && c.level == LevelUnknown {
		c.raise(LevelPublic, "host "+h+" is configured public")
	}
	if c.level == LevelUnknown && empty {
		c.raise(LevelPublic, "empty response")
	}
	if c.level == LevelUnknown {
		def := opts.Default
		if def == LevelUnknown {
			def = LevelRestricted
		}
		return DataClass{Level: def, Reasons: []string{"unclassified: default " + def.String()}}
	}
	slices.Sort(c.tags)
	return DataClass{Level: c.level, Tags: slices.Compact(c.tags), Reasons: c.reasons, Classified: true}
}

type classifier struct {
	level   Level
	tags    []string
	reasons []string
	seen    map[string]bool
}

func (c *classifier) raise(l Level, reason string, tags ...string) {
	if l > c.level {
		c.level = l
	}
	c.tags = append(c.tags, tags...)
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if !c.seen[reason] && len(c.reasons) < 16 {
		c.seen[reason] = true
		c.reasons = append(c.reasons, reason)
	}
}

func (c *classifier) finding(f Finding) {
	r := "finding " + f.Type
	switch {
	case f.Category == CategorySecret:
		c.raise(LevelRestricted, r, TagSecret, TagCredentials)
	case f.Type == "ssn" || f.Type == "passport":
		c.raise(LevelRestricted, r, TagPII)
	case f.Type == "credit_card":
		c.raise(LevelRestricted, r, TagPII, TagFinancial)
	case f.Type == "iban":
		c.raise(LevelConfidential, r, TagFinancial)
	default:
		c.raise(LevelConfidential, r, TagPII)
	}
}

// classifyLabels are sensitivity markings people put on documents.
var classifyLabels = []struct {
	phrase string
	level  Level
}{
	{"strictly confidential", LevelRestricted},
	{"top secret", LevelRestricted},
	{"restricted", LevelConfidential},
	{"confidential", LevelConfidential},
	{"internal only", LevelInternal},
	{"internal use only", LevelInternal},
	{"do not distribute", LevelConfidential},
	{"not for distribution", LevelConfidential},
	{"proprietary", LevelConfidential},
}

var classifyHealthWords = []string{"diagnosis", "patient", "medical record", "prescription", "icd-10", "blood pressure", "medication", "hipaa", "treatment plan", "allergies"}

var classifyFinanceWords = []string{"account_number", "account number", "routing number", "routing_number", "balance", "salary", "payroll", "invoice", "amount_due", "transaction", "iban", "swift"}

var classifyCodeMarkers = []string{"package main", "\nfunc ", "\nimport ", "#include <", "\ndef ", "public class ", "\nconst ", "function(", "#!/usr/bin/", "diff --git ", "\n@@ -"}

func (c *classifier) content(f Field) {
	loc := strings.ToLower(f.Location)
	v := f.Value
	if v == "" {
		return
	}
	// Repository and document visibility fields (GitHub, GitLab, Drive).
	last := loc
	if i := strings.LastIndexByte(loc, '.'); i >= 0 {
		last = loc[i+1:]
	}
	lv := strings.ToLower(strings.TrimSpace(v))
	switch last {
	case "private":
		if lv == "true" {
			c.raise(LevelConfidential, "private resource")
		} else if lv == "false" {
			c.raise(LevelPublic, "public resource")
		}
	case "visibility":
		switch lv {
		case "public":
			c.raise(LevelPublic, "public resource")
		case "internal":
			c.raise(LevelInternal, "internal resource")
		case "private":
			c.raise(LevelConfidential, "private resource")
		}
	}
	if len(v) < 8 {
		return
	}
	low := strings.ToLower(v)
	for _, l := range classifyLabels {
		if strings.Contains(low, l.phrase) {
			c.raise(l.level, "label "+l.phrase)
			break
		}
	}
	if n := classifyCount(low, classifyHealthWords); n >= 2 {
		c.raise(LevelConfidential, "health vocabulary", TagHealth)
	}
	if n := classifyCount(low, classifyFinanceWords); n >= 2 {
		c.raise(LevelConfidential, "financial vocabulary", TagFinancial)
	}
	if classifyCount(v, classifyCodeMarkers) >= 2 {
		c.raise(LevelInternal, "source code", TagSourceCode)
	}
}

func classifyCount(s string, words []string) int {
	n := 0
	for _, w := range words {
		if strings.Contains(s, w) {
			n++
		}
	}
	return n
}

func classifyHostname(host string) string {
	h := strings.ToLower(strings.TrimSpace(host))
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.TrimSuffix(h, ".")
}

// classifyHostMatch reports whether host matches pattern: an exact name or
// "*.suffix" (which matches subdomains, not the suffix itself).
func classifyHostMatch(host, pattern string) bool {
	p := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(pattern), "."))
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		return strings.HasSuffix(host, "."+rest)
	}
	return host == p
}

func classifyHostMatches(host string, patterns []string) bool {
	for _, p := range patterns {
		if classifyHostMatch(host, p) {
			return true
		}
	}
	return false
}

// classifyHostLevel returns the level of the most specific (longest)
// pattern matching host, so results do not depend on map order.
func classifyHostLevel(host string, levels map[string]Level) (Level, bool) {
	best, bestLen, ok := LevelUnknown, -1, false
	for p, l := range levels {
		if classifyHostMatch(host, p) && (len(p) > bestLen || (len(p) == bestLen && l > best)) {
			best, bestLen, ok = l, len(p), true
		}
	}
	return best, ok
}
