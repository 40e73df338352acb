package rules

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/idna"
)

var templateNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Host pattern classes, most specific first (their numeric order is the
// specificity used across packs).
const (
	hostWildcard = 1 // "*.slack.com": one label or more before the suffix
	hostTemplate = 2 // "{bucket}.s3.amazonaws.com": captures whole labels
	hostExact    = 3 // "api.github.com"
)

// hostPattern is one compiled entry of a pack's hosts list.
type hostPattern struct {
	class    int
	canon    string   // normalised pattern text, for collision detection
	exact    string   // hostExact
	suffix   string   // hostWildcard: ".slack.com"
	labels   []string // hostTemplate: literal labels, "" where a capture is
	captures []string // hostTemplate: capture names, parallel to labels ("" for literals)
}

// normalizeHost lower-cases a host name, folds a trailing dot and converts
// IDN labels to punycode so that patterns and requests compare alike. It
// returns the input lower-cased when it is not a valid IDN.
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if h == "" {
		return h
	}
	ascii := true
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return h
	}
	if a, err := idna.Lookup.ToASCII(h); err == nil {
		return strings.ToLower(a)
	}
	return h
}

func compileHostPattern(s string) (*hostPattern, error) {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if h == "" {
		return nil, errors.New("empty host")
	}
	if strings.ContainsAny(h, ":/ ") {
		return nil, fmt.Errorf("host %q: give a host name only (no scheme, port or path)", s)
	}
	labels := strings.Split(h, ".")
	hp := &hostPattern{}
	switch {
	case labels[0] == "*":
		if len(labels) < 2 {
			return nil, fmt.Errorf("host %q: a wildcard needs a suffix (\"*.example.com\")", s)
		}
		rest, err := normalizeHostLabels(labels[1:], s)
		if err != nil {
			return nil, err
		}
		hp.class = hostWildcard
		hp.suffix = "." + strings.Join(rest, ".")
		hp.canon = "*" + hp.suffix
	case strings.Contains(h, "{"):
		hp.class = hostTemplate
		var canon []string
		for _, l := range labels {
			if strings.HasPrefix(l, "{") && strings.HasSuffix(l, "}") {
				name := l[1 : len(l)-1]
				if !templateNameRe.MatchString(name) {
					return nil, fmt.Errorf("host %q: bad capture name %q", s, name)
				}
				if containsString(hp.captures, name) {
					return nil, fmt.Errorf("host %q: capture %q used twice", s, name)
				}
				hp.labels = append(hp.labels, "")
				hp.captures = append(hp.captures, name)
				canon = append(canon, "{}")
				continue
			}
			if strings.ContainsAny(l, "{}*") {
				return nil, fmt.Errorf("host %q: a capture must be a whole label (\"{bucket}.s3.amazonaws.com\")", s)
			}
			nl, err := normalizeHostLabels([]string{l}, s)
			if err != nil {
				return nil, err
			}
			hp.labels = append(hp.labels, nl[0])
			hp.captures = append(hp.captures, "")
			canon = append(canon, nl[0])
		}
		hp.canon = strings.Join(canon, ".")
	default:
		nl, err := normalizeHostLabels(labels, s)
		if err != nil {
			return nil, err
		}
		hp.class = hostExact
		hp.exact = strings.Join(nl, ".")
		hp.canon = hp.exact
	}
	return hp, nil
}

func normalizeHostLabels(labels []string, orig string) ([]string, error) {
	out := make([]string, len(labels))
	for i, l := range labels {
		if l == "" || strings.ContainsAny(l, "{}*") {
			return nil, fmt.Errorf("host %q: bad label %q", orig, l)
		}
		n := normalizeHost(l)
		for j := 0; j < len(n); j++ {
			c := n[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return nil, fmt.Errorf("host %q: bad label %q", orig, l)
			}
		}
		out[i] = n
	}
	return out, nil
}

// match reports whether the normalised host matches, with host captures.
func (hp *hostPattern) match(host string) (map[string]string, bool) {
	switch hp.class {
	case hostExact:
		return nil, host == hp.exact
	case hostWildcard:
		return nil, len(host) > len(hp.suffix) && strings.HasSuffix(host, hp.suffix) && !strings.HasPrefix(host, ".")
	case hostTemplate:
		labels := strings.Split(host, ".")
		if len(labels) != len(hp.labels) {
			return nil, false
		}
		var caps map[string]string
		for i, l := range labels {
			if hp.captures[i] == "" {
				if l != hp.labels[i] {
					return nil, false
				}
				continue
			}
			if l == "" {
				return nil, false
			}
			if caps == nil {
				caps = make(map[string]string, 2)
			}
			caps[hp.captures[i]] = l
		}
		return caps, true
	}
	return nil, false
}

// pathSegment is one segment of a path template: a literal, or a capture
// with an optional literal prefix and suffix ("{documentId}:batchUpdate").
type pathSegment struct {
	literal string
	capture string
	prefix  string
	suffix  string
	isCap   bool
}

// pathTemplate is a compiled match.path.
type pathTemplate struct {
	text     string
	canon    string
	segs     []pathSegment
	rest     bool   // final "*" or "{name*}"
	restName string // "" for an unnamed "*"
}

func compilePathTemplate(s string) (*pathTemplate, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("path %q: must start with /", s)
	}
	if strings.ContainsAny(s, "?# \t") {
		return nil, fmt.Errorf("path %q: give the path only (query predicates go in match.query)", s)
	}
	pt := &pathTemplate{text: s}
	trimmed := strings.TrimSuffix(s[1:], "/")
	var parts []string
	if trimmed != "" {
		parts = strings.Split(trimmed, "/")
	}
	var canon []string
	seen := map[string]bool{}
	for i, part := range parts {
		last := i == len(parts)-1
		if part == "" {
			return nil, fmt.Errorf("path %q: empty segment", s)
		}
		if part == "*" || strings.HasPrefix(part, "{") && strings.HasSuffix(part, "*}") {
			if !last {
				return nil, fmt.Errorf("path %q: a rest capture (* or {name*}) must be the final segment", s)
			}
			pt.rest = true
			if part != "*" {
				pt.restName = part[1 : len(part)-2]
				if !templateNameRe.MatchString(pt.restName) {
					return nil, fmt.Errorf("path %q: bad capture name %q", s, pt.restName)
				}
				if seen[pt.restName] {
					return nil, fmt.Errorf("path %q: capture %q used twice", s, pt.restName)
				}
			}
			canon = append(canon, "*")
			continue
		}
		open := strings.IndexByte(part, '{')
		if open < 0 {
			if strings.ContainsAny(part, "}*") {
				return nil, fmt.Errorf("path %q: bad segment %q", s, part)
			}
			lit, err := url.PathUnescape(part)
			if err != nil {
				return nil, fmt.Errorf("path %q: bad escape in %q", s, part)
			}
			pt.segs = append(pt.segs, pathSegment{literal: lit})
			canon = append(canon, lit)
			continue
		}
		closeIdx := strings.IndexByte(part, '}')
		if closeIdx < open || strings.Count(part, "{") != 1 || strings.Count(part, "}") != 1 || strings.Contains(part, "*") {
			return nil, fmt.Errorf("path %q: bad segment %q (one {name} per segment)", s, part)
		}
		name := part[open+1 : closeIdx]
		if !templateNameRe.MatchString(name) {
			return nil, fmt.Errorf("path %q: bad capture name %q", s, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("path %q: capture %q used twice", s, name)
		}
		seen[name] = true
		seg := pathSegment{capture: name, isCap: true, prefix: part[:open], suffix: part[closeIdx+1:]}
		pt.segs = append(pt.segs, seg)
		canon = append(canon, seg.prefix+"{}"+seg.suffix)
	}
	pt.canon = "/" + strings.Join(canon, "/")
	return pt, nil
}

func (pt *pathTemplate) captureNames() []string {
	if pt == nil {
		return nil
	}
	var out []string
	for _, s := range pt.segs {
		if s.isCap {
			out = append(out, s.capture)
		}
	}
	if pt.restName != "" {
		out = append(out, pt.restName)
	}
	return out
}

// specificity counts: pure literal segments, partial segments, captures.
func (pt *pathTemplate) specificity() (literals, partials, captures int) {
	for _, s := range pt.segs {
		switch {
		case !s.isCap:
			literals++
		case s.prefix != "" || s.suffix != "":
			partials++
			captures++
		default:
			captures++
		}
	}
	if pt.rest {
		captures++
	}
	return
}

// match matches decoded request segments (see splitRequestPath) against the
// template and returns the captures.
func (pt *pathTemplate) match(segs []string, caseInsensitive bool) (map[string]string, bool) {
	if len(segs) < len(pt.segs) || (!pt.rest && len(segs) != len(pt.segs)) {
		return nil, false
	}
	var caps map[string]string
	for i, ts := range pt.segs {
		s := segs[i]
		if !ts.isCap {
			if s == ts.literal || caseInsensitive && strings.EqualFold(s, ts.literal) {
				continue
			}
			return nil, false
		}
		if len(s) <= len(ts.prefix)+len(ts.suffix) {
			return nil, false
		}
		if ts.prefix != "" && !hasPrefixFold(s, ts.prefix, caseInsensitive) || ts.suffix != "" && !hasSuffixFold(s, ts.suffix, caseInsensitive) {
			return nil, false
		}
		if caps == nil {
			caps = make(map[string]string, 4)
		}
		caps[ts.capture] = s[len(ts.prefix) : len(s)-len(ts.suffix)]
	}
	if pt.rest && pt.restName != "" {
		if caps == nil {
			caps = make(map[string]string, 1)
		}
		caps[pt.restName] = strings.Join(segs[len(pt.segs):], "/")
	}
	return caps, true
}

func hasPrefixFold(s, p string, fold bool) bool {
	if fold {
		return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
	}
	return strings.HasPrefix(s, p)
}

func hasSuffixFold(s, p string, fold bool) bool {
	if fold {
		return len(s) >= len(p) && strings.EqualFold(s[len(s)-len(p):], p)
	}
	return strings.HasSuffix(s, p)
}

// splitRequestPath splits an escaped request path on real slashes, then
// percent-decodes each segment (so "%2F" stays inside its segment), drops
// empty segments (trailing and doubled slashes) and resolves "." and ".."
// after decoding, as origin servers commonly do: a path cannot climb out of
// the resource it appears to name.
func splitRequestPath(escaped string) []string {
	raw := strings.Split(escaped, "/")
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		if r == "" {
			continue
		}
		d, err := url.PathUnescape(r)
		if err != nil {
			d = r
		}
		switch d {
		case ".":
			continue
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, d)
	}
	return out
}

// targetTemplate renders "{owner}/{repo}" over an action's values.
type targetTemplate struct {
	parts []targetPart
}

type targetPart struct {
	lit  string
	name string
}

func compileTargetTemplate(s string, names map[string]bool) (*targetTemplate, error) {
	t := &targetTemplate{}
	for len(s) > 0 {
		open := strings.IndexByte(s, '{')
		closeIdx := strings.IndexByte(s, '}')
		if open < 0 {
			if closeIdx >= 0 {
				return nil, errors.New("unbalanced }")
			}
			t.parts = append(t.parts, targetPart{lit: s})
			break
		}
		if closeIdx >= 0 && closeIdx < open {
			return nil, errors.New("unbalanced }")
		}
		if open > 0 {
			t.parts = append(t.parts, targetPart{lit: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return nil, errors.New("unbalanced {")
		}
		name := s[open+1 : open+end]
		if !templateNameRe.MatchString(name) {
			return nil, fmt.Errorf("bad name {%s}", name)
		}
		if !names[name] {
			return nil, fmt.Errorf("{%s} is not a capture or parameter of this action", name)
		}
		t.parts = append(t.parts, targetPart{name: name})
		s = s[open+end+1:]
	}
	return t, nil
}

func (t *targetTemplate) render(values map[string]any) string {
	if t == nil {
		return ""
	}
	texts := make([]string, len(t.parts))
	named, filled := false, false
	for i, p := range t.parts {
		if p.name == "" {
			texts[i] = p.lit
			continue
		}
		named = true
		texts[i] = valueText(values[p.name])
		filled = filled || texts[i] != ""
	}
	if named && !filled {
		return ""
	}
	// A missing value takes its separator with it: "{owner}/{repo}#{n}"
	// without n renders "owner/repo", "{bucket}/{key}" without a bucket "key".
	for i, p := range t.parts {
		if p.name == "" || texts[i] != "" {
			continue
		}
		switch {
		case i > 0 && t.parts[i-1].name == "":
			texts[i-1] = ""
		case i+1 < len(t.parts) && t.parts[i+1].name == "":
			texts[i+1] = ""
		}
	}
	return strings.Join(texts, "")
}
