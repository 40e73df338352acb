package inspect

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"regexp"
	"slices"
	"strings"
)

// Finding categories.
const (
	CategorySecret = "secret"
	CategoryPII    = "pii"
)

// Finding is one secret or piece of personal data found in a request or
// response field (issue 6, DLP).
type Finding struct {
	// Type names the detector: "aws_access_key_id", "github_token",
	// "email", "credit_card", "session_secret", ...
	Type string
	// Category is CategorySecret or CategoryPII.
	Category string
	// Location is the field location followed by the decoding chain that
	// revealed the value, e.g. "body.note|base64|url".
	Location string
	// Value is the matched plain value. It is never logged: Finding
	// implements slog.LogValuer and redacts it.
	Value string
	// Confidence is in [0,1]; validated formats (checksums) score highest.
	Confidence float64
	// Placeholder replaces the value in redacted output:
	// "[REDACTED:aws_access_key_id]".
	Placeholder string
	// Start and End are byte offsets of Value within the decoded variant
	// named by Location. For a session secret found in an encoded form
	// (base64, hex, ...) they delimit the encoded text.
	Start, End int
}

// LogValue implements slog.LogValuer: the value itself never reaches a log,
// only a short digest that lets an operator correlate repeated findings.
func (f Finding) LogValue() slog.Value {
	sum := sha256.Sum256([]byte(f.Value))
	return slog.GroupValue(
		slog.String("type", f.Type),
		slog.String("category", f.Category),
		slog.String("location", f.Location),
		slog.Float64("confidence", f.Confidence),
		slog.String("value_sha256", hex.EncodeToString(sum[:6])),
	)
}

// String redacts like LogValue so that fmt verbs cannot leak the value.
func (f Finding) String() string {
	return f.Type + "@" + f.Location + " " + f.Placeholder
}

// Defaults for DLPOptions.
const (
	DefaultDLPMaxDepth   = 3
	DefaultDLPMinEntropy = 3.0
	// dlpMinSessionSecret is the shortest session secret searched for;
	// shorter values would match ordinary text.
	dlpMinSessionSecret = 6
	// dlpMaxVariants bounds the decoded variants explored per field.
	dlpMaxVariants = 64
)

// DLPOptions configures a Scanner.
type DLPOptions struct {
	// Ignore lists exact values never reported: the credentials aarm itself
	// injects into requests. A finding is suppressed when its value equals
	// an ignored value or is contained in one (an injected "Bearer <token>"
	// header value suppresses the token).
	Ignore []string
	// SessionSecrets are the session's configured secrets; they are
	// reported as type "session_secret" in every encoding the scanner
	// decodes, and also when found base64/hex/base32-encoded at any offset.
	// Values shorter than 6 bytes are ignored.
	SessionSecrets []string
	// MaxDepth bounds nested decoding (URL, base64, hex, base32, JSON
	// escapes). Zero means DefaultDLPMaxDepth.
	MaxDepth int
	// MinEntropy is the Shannon entropy (bits per character) a value in a
	// generic "password=..." assignment needs to be reported. Zero means
	// DefaultDLPMinEntropy.
	MinEntropy float64
	// Disabled lists detector types that are not run.
	Disabled []string
	// SkipLocations lists field location prefixes (case-insensitive) that
	// are not scanned, e.g. "header.authorization" when the agent's own
	// credential to the destination travels there.
	SkipLocations []string
}

// Scanner finds secrets and PII in fields. It compiles its detectors once;
// a Scanner is safe for concurrent use.
type Scanner struct {
	opts      DLPOptions
	detectors []*dlpDetector
	ignore    []string
	session   []dlpSessionSecret
	skip      []string
}

type dlpSessionSecret struct {
	plain   string
	encoded []string
}

// dlpDetector is one DLP rule: a regular expression (the value is the first
// submatch when there is one, else the whole match), optional literals one of
// which must occur in the text for the regex to run, and a validator that
// confirms the match and returns its confidence (0 rejects).
type dlpDetector struct {
	typ      string
	category string
	re       *regexp.Regexp
	// any lists literals (lower case when fold is set) one of which must
	// be present for the detector to run; empty means always run.
	any      []string
	fold     bool
	validate func(value, text string, start int) float64
	// pre, when set, is a cheap test the text must pass for re to run.
	pre func(text string) bool
	// find, when set, replaces re: it returns [start, end) spans of values.
	find func(text, lower string) [][2]int
	conf float64
}

// NewScanner returns a Scanner with every built-in detector not listed in
// opts.Disabled. It is cheap (the expressions are compiled once at package
// init), so a gate can build one per session or per set of injected
// credentials.
func NewScanner(opts DLPOptions) *Scanner {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultDLPMaxDepth
	}
	if opts.MinEntropy <= 0 {
		opts.MinEntropy = DefaultDLPMinEntropy
	}
	s := &Scanner{opts: opts}
	for _, d := range dlpDetectors(opts) {
		if !slices.Contains(opts.Disabled, d.typ) {
			s.detectors = append(s.detectors, d)
		}
	}
	for _, v := range opts.Ignore {
		if v != "" {
			s.ignore = append(s.ignore, v)
		}
	}
	if !slices.Contains(opts.Disabled, "session_secret") {
		for _, v := range opts.SessionSecrets {
			if len(v) >= dlpMinSessionSecret {
				s.session = append(s.session, dlpSessionSecret{plain: v, encoded: dlpEncodings(v)})
			}
		}
	}
	for _, p := range opts.SkipLocations {
		s.skip = append(s.skip, strings.ToLower(p))
	}
	return s
}

// Scan returns the findings in fields, in field order then offset order.
// Each field is scanned as given and in its decoded variants (see
// dlpVariants); the same (type, value) found through several variants of
// the same field is reported once, at its most direct location.
func (s *Scanner) Scan(fields []Field) []Finding {
	var out []Finding
	for _, f := range fields {
		if f.Value == "" || s.skipped(f.Location) {
			continue
		}
		out = append(out, s.scanField(f)...)
	}
	return out
}

func (s *Scanner) skipped(loc string) bool {
	l := strings.ToLower(loc)
	for _, p := range s.skip {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

type dlpKey struct{ typ, value string }

func (s *Scanner) scanField(f Field) []Finding {
	variants := dlpVariants(f.Value, s.opts.MaxDepth)
	best := map[dlpKey]int{}
	var found []Finding
	var depth []int
	for _, v := range variants {
		loc := f.Location
		if v.chain != "" {
			loc += "|" + v.chain
		}
		d := strings.Count(v.chain, "|")
		if v.chain != "" {
			d++
		}
		add := func(fd Finding) {
			if s.ignored(fd.Value) {
				return
			}
			fd.Location = loc
			fd.Placeholder = "[REDACTED:" + fd.Type + "]"
			k := dlpKey{fd.Type, fd.Value}
			if i, ok := best[k]; ok {
				if d < depth[i] {
					found[i], depth[i] = fd, d
				}
				return
			}
			best[k] = len(found)
			found = append(found, fd)
			depth = append(depth, d)
		}
		s.runDetectors(v.text, add)
		s.runSessionSecrets(v.text, add)
	}
	found, depth = dlpDropGeneric(found, depth)
	idx := make([]int, len(found))
	for i := range idx {
		idx[i] = i
	}
	// Direct findings first, then by decoding chain, offset and type, so
	// the order does not depend on detector or variant order.
	slices.SortStableFunc(idx, func(a, b int) int {
		fa, fb := found[a], found[b]
		if depth[a] != depth[b] {
			return depth[a] - depth[b]
		}
		if c := strings.Compare(fa.Location, fb.Location); c != 0 {
			return c
		}
		if fa.Start != fb.Start {
			return fa.Start - fb.Start
		}
		return strings.Compare(fa.Type, fb.Type)
	})
	out := make([]Finding, len(idx))
	for i, j := range idx {
		out[i] = found[j]
	}
	return out
}

func (s *Scanner) ignored(v string) bool {
	for _, ig := range s.ignore {
		if v == ig || (len(v) >= 8 && strings.Contains(ig, v)) {
			return true
		}
	}
	return false
}

func (s *Scanner) runDetectors(text string, add func(Finding)) {
	var lower string
	for _, d := range s.detectors {
		if len(d.any) > 0 {
			hay := text
			if d.fold {
				if lower == "" {
					lower = dlpASCIILower(text)
				}
				hay = lower
			}
			ok := false
			for _, lit := range d.any {
				if strings.Contains(hay, lit) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		}
		if d.pre != nil && !d.pre(text) {
			continue
		}
		var spans [][2]int
		if d.find != nil {
			if lower == "" {
				lower = dlpASCIILower(text)
			}
			spans = d.find(text, lower)
		} else {
			for _, m := range d.re.FindAllStringSubmatchIndex(text, -1) {
				if len(m) >= 4 && m[2] >= 0 {
					spans = append(spans, [2]int{m[2], m[3]})
				} else {
					spans = append(spans, [2]int{m[0], m[1]})
				}
			}
		}
		for _, sp := range spans {
			start, end := sp[0], sp[1]
			val := text[start:end]
			conf := d.conf
			if d.validate != nil {
				conf = d.validate(val, text, start)
			}
			if conf <= 0 {
				continue
			}
			add(Finding{Type: d.typ, Category: d.category, Value: val, Confidence: conf, Start: start, End: end})
		}
	}
}

func (s *Scanner) runSessionSecrets(text string, add func(Finding)) {
	for _, ss := range s.session {
		if i := strings.Index(text, ss.plain); i >= 0 {
			add(Finding{Type: "session_secret", Category: CategorySecret, Value: ss.plain, Confidence: 1, Start: i, End: i + len(ss.plain)})
			continue
		}
		for _, enc := range ss.encoded {
			if i := strings.Index(text, enc); i >= 0 {
				add(Finding{Type: "session_secret", Category: CategorySecret, Value: ss.plain, Confidence: 1, Start: i, End: i + len(enc)})
				break
			}
		}
	}
}

// DLPSignal summarises findings as the policy contract's signals.dlp map:
// {count, types, secrets, pii, max_confidence}.
func DLPSignal(findings []Finding) map[string]any {
	types := []string{}
	secrets, pii := false, false
	maxConf := 0.0
	for _, f := range findings {
		if !slices.Contains(types, f.Type) {
			types = append(types, f.Type)
		}
		secrets = secrets || f.Category == CategorySecret
		pii = pii || f.Category == CategoryPII
		maxConf = max(maxConf, f.Confidence)
	}
	slices.Sort(types)
	anyTypes := make([]any, len(types))
	for i, t := range types {
		anyTypes[i] = t
	}
	return map[string]any{
		"count":          float64(len(findings)),
		"types":          anyTypes,
		"secrets":        secrets,
		"pii":            pii,
		"max_confidence": maxConf,
	}
}

// Redact returns text with every finding's span replaced by its placeholder.
// Only findings located in the field itself (no decoding chain) can be
// redacted in place; the others are returned in rest for the caller to
// handle (typically by denying).
func Redact(text string, findings []Finding) (redacted string, rest []Finding) {
	var direct []Finding
	for _, f := range findings {
		if strings.Contains(f.Location, "|") || f.Start < 0 || f.End > len(text) || f.Start > f.End || text[f.Start:f.End] != f.Value {
			rest = append(rest, f)
			continue
		}
		direct = append(direct, f)
	}
	slices.SortFunc(direct, func(a, b Finding) int { return a.Start - b.Start })
	var b strings.Builder
	pos := 0
	for _, f := range direct {
		if f.Start < pos {
			continue
		}
		b.WriteString(text[pos:f.Start])
		b.WriteString(f.Placeholder)
		pos = f.End
	}
	b.WriteString(text[pos:])
	return b.String(), rest
}

// dlpDropGeneric removes generic_secret findings whose value overlaps a
// specific secret finding: the specific detector names it better.
func dlpDropGeneric(found []Finding, depth []int) ([]Finding, []int) {
	var fs []Finding
	var ds []int
	for i, f := range found {
		if f.Type == "generic_secret" && slices.ContainsFunc(found, func(o Finding) bool {
			return o.Category == CategorySecret && o.Type != "generic_secret" &&
				(strings.Contains(o.Value, f.Value) || strings.Contains(f.Value, o.Value))
		}) {
			continue
		}
		fs, ds = append(fs, f), append(ds, depth[i])
	}
	return fs, ds
}

// dlpASCIILower lower-cases ASCII letters only, so that byte offsets in the
// result are offsets in s.
func dlpASCIILower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
