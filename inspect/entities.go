package inspect

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/aarmproxy/aarm"
)

// EntityRef is an entity in normalised form, comparable with ==.
// Normalisation: emails lower-case (domain in punycode); domains punycode,
// lower-case, no trailing dot; URLs scheme and host lower-case, default port
// and fragment removed, empty path "/"; IBANs upper-case without spaces;
// account numbers digits only; phone numbers "+" and digits (kind
// recipient); repositories "owner/repo" lower-case; Slack channels "#name"
// lower-case or the channel id as written.
type EntityRef struct {
	Kind  aarm.EntityKind
	Value string
}

var (
	entityAccountRE = regexp.MustCompile(`(?i)\b(?:account|acct|routing|aba|beneficiary|sort[ _-]?code)[ _-]?(?:no|number|num|id|#)?\.?["']?\s*[:#=]?\s*["']?([0-9][0-9 -]{4,22}[0-9])\b`)
	entityChannelRE = regexp.MustCompile(`(?:^|[\s("'])#([a-z0-9][a-z0-9._-]{0,79})`)
)

// entityTLDs are the top-level domains recognised in bare domain names
// ("acme.com" in prose). File extensions that are also ccTLDs (md, py, rs,
// sh, pl, ps, ...) are left out on purpose; URLs and e-mail addresses are
// recognised with any TLD.
var entityTLDs = map[string]bool{}

func init() {
	for _, t := range strings.Fields(`com net org io dev co ai app edu gov mil int biz info me tv us uk de fr nl
		be ch at se no dk fi es it pt pl ie cz ca au nz jp cn in br mx ru za kr sg hk tw il ae eu
		cloud tech site online xyz club shop store page blog news email example test invalid local
		internal corp lan gmbh ltd inc finance bank money pay`) {
		entityTLDs[t] = true
	}
}

// entityNotRepos are "a/b" shapes in prose that are not repositories.
var entityNotRepos = map[string]bool{"and/or": true, "n/a": true, "i/o": true, "w/o": true, "tcp/ip": true, "read/write": true, "client/server": true, "on/off": true, "yes/no": true, "true/false": true, "input/output": true}

type entityHit struct {
	pos int
	ref EntityRef
}

// ExtractEntities returns the entities named in text, in order of first
// appearance, each once: URLs (and their host as a domain, and "owner/repo"
// for GitHub URLs), e-mail addresses (and their domain), bare domain names
// with a known TLD, IBANs that pass mod-97, account and routing numbers when
// labelled ("account number: ..."), E.164 phone numbers, "owner/repo" when
// the text speaks of GitHub or repositories, Slack channels ("#name") and
// Slack channel ids ("C0123ABCD").
func ExtractEntities(text string) []EntityRef {
	var hits []entityHit
	add := func(pos int, k aarm.EntityKind, v string) {
		if v != "" {
			hits = append(hits, entityHit{pos, EntityRef{k, v}})
		}
	}
	low := dlpASCIILower(text)
	// covered marks bytes inside URLs and e-mail addresses, whose parts are
	// not extracted again as bare domains, repositories or channels.
	covered := make([]bool, len(text))
	cover := func(a, b int) {
		for i := a; i < b; i++ {
			covered[i] = true
		}
	}
	for _, sp := range entityURLFind(low) {
		raw := strings.TrimRight(text[sp[0]:sp[1]], ".,;:!?'\"")
		cover(sp[0], sp[0]+len(raw))
		u, host, ok := entityCanonURL(raw)
		if !ok {
			continue
		}
		add(sp[0], aarm.EntityURL, u)
		add(sp[0], aarm.EntityDomain, host)
		if repo := entityGitHubRepo(u); repo != "" {
			add(sp[0], aarm.EntityRepo, repo)
		}
	}
	for _, sp := range piiEmailFind(text, "") {
		v := text[sp[0]:sp[1]]
		if piiValidateEmail(v, text, sp[0]) == 0 {
			continue
		}
		cover(sp[0], sp[1])
		at := strings.LastIndexByte(v, '@')
		dom := entityCanonDomain(v[at+1:])
		add(sp[0], aarm.EntityEmail, strings.ToLower(v[:at])+"@"+dom)
		add(sp[0], aarm.EntityDomain, dom)
	}
	for _, sp := range entityDomainFind(text) {
		if covered[sp[0]] {
			continue
		}
		d := entityCanonDomain(text[sp[0]:sp[1]])
		tld := d[strings.LastIndexByte(d, '.')+1:]
		if entityTLDs[tld] || strings.HasPrefix(tld, "xn--") {
			add(sp[0], aarm.EntityDomain, d)
		}
	}
	if piiHasIBANStart(text) {
		for _, m := range piiIBANRE.FindAllStringSubmatchIndex(text, -1) {
			if v := text[m[2]:m[3]]; ibanValid(v) {
				add(m[2], aarm.EntityAccount, strings.ReplaceAll(v, " ", ""))
			}
		}
	}
	if slices.ContainsFunc(entityAccountWords, func(w string) bool { return entityHasWord(low, w) }) {
		for _, m := range entityAccountRE.FindAllStringSubmatchIndex(text, -1) {
			add(m[2], aarm.EntityAccount, piiDigits(text[m[2]:m[3]]))
		}
	}
	for _, sp := range piiPhoneFind(text, "") {
		if v := text[sp[0]:sp[1]]; piiValidatePhone(v, text, sp[0]) > 0 {
			add(sp[0], aarm.EntityRecipient, "+"+piiDigits(v))
		}
	}
	if strings.Contains(low, "github") || strings.Contains(low, "gitlab") || entityHasWord(low, "repo") || entityHasWord(low, "repos") || strings.Contains(low, "repositor") {
		for _, sp := range entityRepoFind(text) {
			if covered[sp[0]] {
				continue
			}
			owner, repo, _ := strings.Cut(strings.ToLower(text[sp[0]:sp[1]]), "/")
			r := owner + "/" + strings.TrimSuffix(repo, ".git")
			if entityNotRepos[r] || piiDigits(owner) == owner {
				continue
			}
			add(sp[0], aarm.EntityRepo, r)
		}
	}
	if strings.IndexByte(low, '#') >= 0 {
		for _, m := range entityChannelRE.FindAllStringSubmatchIndex(low, -1) {
			v := low[m[2]:m[3]]
			if strings.TrimLeft(v, "0123456789") == "" || covered[m[2]] {
				continue // "#123" is an issue number
			}
			add(m[2]-1, aarm.EntityChannel, "#"+strings.TrimRight(v, "."))
		}
	}
	for _, sp := range entityChanIDFind(text) {
		v := text[sp[0]:sp[1]]
		if n := len(piiDigits(v)); n >= 2 && n < len(v)-1 && !covered[sp[0]] {
			add(sp[0], aarm.EntityChannel, v)
		}
	}
	slices.SortStableFunc(hits, func(a, b entityHit) int { return a.pos - b.pos })
	seen := map[EntityRef]bool{}
	var out []EntityRef
	for _, h := range hits {
		if !seen[h.ref] {
			seen[h.ref] = true
			out = append(out, h.ref)
		}
	}
	return out
}

// entityAccountWords are the labels entityAccountRE needs, as whole words.
var entityAccountWords = []string{"account", "acct", "routing", "aba", "beneficiary", "sort", "account_number", "routing_number", "account_no", "acct_no"}

func entityIsWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// entityHasWord reports whether w occurs in low not surrounded by letters
// or digits.
func entityHasWord(low, w string) bool {
	for off := 0; off < len(low); {
		i := strings.Index(low[off:], w)
		if i < 0 {
			return false
		}
		i += off
		j := i + len(w)
		if (i == 0 || !entityIsWordByte(low[i-1])) && (j == len(low) || !entityIsWordByte(low[j])) {
			return true
		}
		off = i + 1
	}
	return false
}

// entityURLStop are the bytes that end a URL in running text.
const entityURLStop = " \t\r\n\"'<>()[]{}\\^`|"

// entityURLFind returns the spans of http(s) URLs (found in the ASCII
// lower-cased text; offsets are the same in the original).
func entityURLFind(low string) [][2]int {
	var out [][2]int
	for off := 0; off < len(low); {
		i := strings.Index(low[off:], "http")
		if i < 0 {
			break
		}
		i += off
		off = i + 4
		j := i + 4
		if j < len(low) && low[j] == 's' {
			j++
		}
		if !strings.HasPrefix(low[j:], "://") || (i > 0 && entityIsWordByte(low[i-1])) {
			continue
		}
		k := j + 3
		for k < len(low) && strings.IndexByte(entityURLStop, low[k]) < 0 {
			k++
		}
		if k > j+3 {
			out = append(out, [2]int{i, k})
			off = k
		}
	}
	return out
}

// entityDomainFind returns runs of letters, digits, '-' and '.' that look
// like a domain name: at least two labels of 1..63 characters not starting
// or ending with '-', a final label of at least two letters, not part of an
// e-mail address, path or identifier.
func entityDomainFind(text string) [][2]int {
	var out [][2]int
	isLabel := func(r rune) bool { return r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r) }
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if !isLabel(r) {
			i += size
			continue
		}
		j, dots := i, 0
		for j < len(text) {
			r, sz := utf8.DecodeRuneInString(text[j:])
			if r == '.' {
				dots++
			} else if !isLabel(r) {
				break
			}
			j += sz
		}
		start, end := i, j
		i = j
		if dots == 0 {
			continue
		}
		if start > 0 && strings.IndexByte("@/_", text[start-1]) >= 0 {
			continue
		}
		if end < len(text) && strings.IndexByte("@_", text[end]) >= 0 {
			continue
		}
		for end > start && text[end-1] == '.' {
			end--
		}
		if entityValidDomain(text[start:end]) {
			out = append(out, [2]int{start, end})
		}
	}
	return out
}

func entityValidDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
	}
	tld := labels[len(labels)-1]
	if utf8.RuneCountInString(tld) < 2 {
		return false
	}
	for _, r := range tld {
		if !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

// entityRepoFind returns "owner/repo" spans: an owner of 1..39 letters,
// digits and '-', a repo of letters, digits, '.', '_' and '-', standing
// alone (not part of a longer path or URL).
func entityRepoFind(text string) [][2]int {
	var out [][2]int
	isOwner := func(c byte) bool { return entityIsWordByte(c) || c == '-' }
	isRepo := func(c byte) bool { return entityIsWordByte(c) || c == '.' || c == '_' || c == '-' }
	for off := 0; off < len(text); {
		i := strings.IndexByte(text[off:], '/')
		if i < 0 {
			break
		}
		slash := off + i
		off = slash + 1
		s := slash
		for s > 0 && slash-s < 39 && isOwner(text[s-1]) {
			s--
		}
		if s == slash || !entityIsWordByte(text[s]) || (s > 0 && strings.IndexByte(" \t\r\n(\"'`", text[s-1]) < 0) {
			continue
		}
		e := slash + 1
		for e < len(text) && e-slash <= 100 && isRepo(text[e]) {
			e++
		}
		if e < len(text) && strings.IndexByte(" \t\r\n)\"'`,;:!?", text[e]) < 0 {
			continue
		}
		for e > slash+1 && text[e-1] == '.' {
			e--
		}
		if e == slash+1 {
			continue
		}
		out = append(out, [2]int{s, e})
		off = e
	}
	return out
}

// entityChanIDFind returns Slack channel id candidates: 'C' or 'G' and 7..11
// capital letters or digits, as a whole word.
func entityChanIDFind(text string) [][2]int {
	var out [][2]int
	for i := 0; i < len(text); i++ {
		c := text[i]
		if (c != 'C' && c != 'G') || (i > 0 && entityIsWordByte(text[i-1])) {
			continue
		}
		j := i + 1
		for j < len(text) && ('A' <= text[j] && text[j] <= 'Z' || '0' <= text[j] && text[j] <= '9') {
			j++
		}
		if n := j - i - 1; n >= 7 && n <= 11 && (j == len(text) || !entityIsWordByte(text[j])) {
			out = append(out, [2]int{i, j})
		}
		i = j - 1
	}
	return out
}

// entityCanonDomain lower-cases d, removes a trailing dot and converts
// internationalised labels to punycode.
func entityCanonDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if a, err := idna.ToASCII(d); err == nil && a != "" {
		return a
	}
	return d
}

// entityCanonURL returns the canonical form of a URL and its host.
func entityCanonURL(raw string) (string, string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", false
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host, port := u.Hostname(), u.Port()
	host = entityCanonDomain(host)
	if host == "" {
		return "", "", false
	}
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.Path == "" {
		u.Path, u.RawPath = "/", ""
	}
	return u.String(), host, true
}

// entityGitHubRepo returns "owner/repo" for github.com and api.github.com
// repository URLs.
func entityGitHubRepo(canon string) string {
	u, err := url.Parse(canon)
	if err != nil {
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch u.Hostname() {
	case "github.com":
	case "api.github.com":
		if len(parts) < 3 || parts[0] != "repos" {
			return ""
		}
		parts = parts[1:]
	default:
		return ""
	}
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return ""
	}
	switch parts[0] {
	case "orgs", "users", "settings", "login", "marketplace", "search", "notifications", "apps", "sponsors", "topics", "features":
		return ""
	}
	return strings.ToLower(parts[0] + "/" + strings.TrimSuffix(parts[1], ".git"))
}

// Origin is where an entity was seen (issue 6, entity provenance).
type Origin string

// Origins, from most to least trusted.
const (
	// OriginIntent: the session's original request (or context added
	// through the admin API).
	OriginIntent Origin = "intent"
	// OriginTrusted: a response from a host the configuration marks trusted.
	OriginTrusted Origin = "trusted_source"
	// OriginToolOutput: any other response the agent read (untrusted).
	OriginToolOutput Origin = "tool_output"
	// OriginAgent: the agent's own actions.
	OriginAgent Origin = "agent"
)

// Values of the destination_provenance signal returned by Judge.
const (
	ProvenanceIntent    = "intent"
	ProvenanceTrusted   = "trusted_source"
	ProvenanceUntrusted = "untrusted"
	ProvenanceAgent     = "agent"
	ProvenanceUnknown   = "unknown"
)

// DefaultMaxEntities bounds a ProvenanceIndex.
const DefaultMaxEntities = 100_000

// ProvenanceIndex records, per session, where each entity first appeared. It
// is safe for concurrent use. Memory is bounded: over the cap, the oldest
// entries not seen in the intent are evicted first.
type ProvenanceIndex struct {
	mu    sync.RWMutex
	max   int
	m     map[EntityRef]*provRecord
	order []EntityRef
}

type provRecord struct {
	first    Origin
	source   string
	inIntent bool
}

// NewProvenanceIndex returns an empty index holding at most maxEntities
// entities (DefaultMaxEntities when maxEntities <= 0).
func NewProvenanceIndex(maxEntities int) *ProvenanceIndex {
	if maxEntities <= 0 {
		maxEntities = DefaultMaxEntities
	}
	return &ProvenanceIndex{max: maxEntities, m: map[EntityRef]*provRecord{}}
}

// Observe records that e was seen with origin, in the action sourceActionID
// ("" for the intent). The first observation fixes FirstSeen; an intent
// observation is remembered whenever it happens.
func (p *ProvenanceIndex) Observe(e EntityRef, origin Origin, sourceActionID string) {
	if e.Value == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.m[e]
	if !ok {
		r = &provRecord{first: origin, source: sourceActionID}
		p.m[e] = r
		p.order = append(p.order, e)
		p.evict()
	}
	if origin == OriginIntent {
		r.inIntent = true
	}
}

// ObserveText extracts the entities of text and observes each.
func (p *ProvenanceIndex) ObserveText(text string, origin Origin, sourceActionID string) {
	for _, e := range ExtractEntities(text) {
		p.Observe(e, origin, sourceActionID)
	}
}

func (p *ProvenanceIndex) evict() {
	for len(p.m) > p.max {
		i := slices.IndexFunc(p.order, func(e EntityRef) bool { return !p.m[e].inIntent })
		if i < 0 {
			i = 0
		}
		delete(p.m, p.order[i])
		p.order = slices.Delete(p.order, i, i+1)
	}
}

// FirstSeen returns the origin and source action of e's first observation.
func (p *ProvenanceIndex) FirstSeen(e EntityRef) (Origin, string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	r, ok := p.m[e]
	if !ok {
		return "", "", false
	}
	return r.first, r.source, true
}

// Judge returns the destination_provenance signal for an action's
// destination entities: the least trusted of their individual verdicts,
// ordered untrusted > agent > trusted_source > intent; "unknown" when dest
// is empty. One entity's verdict:
//
//   - "intent" if it was ever seen in the intent; an e-mail address or URL
//     whose domain was seen in the intent also counts as "intent" (the user
//     named the organisation);
//   - else by first observation: trusted_source → "trusted_source",
//     tool_output → "untrusted" (the signature of injected instructions);
//   - else "agent": never seen, or first used by the agent itself.
//
// Call Judge before observing the action's own entities with OriginAgent.
func (p *ProvenanceIndex) Judge(dest []EntityRef) string {
	if len(dest) == 0 {
		return ProvenanceUnknown
	}
	rank := map[string]int{ProvenanceIntent: 1, ProvenanceTrusted: 2, ProvenanceAgent: 3, ProvenanceUntrusted: 4}
	worst := ProvenanceIntent
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, e := range dest {
		v := p.judgeOne(e)
		if rank[v] > rank[worst] {
			worst = v
		}
	}
	return worst
}

func (p *ProvenanceIndex) judgeOne(e EntityRef) string {
	r, ok := p.m[e]
	if ok && r.inIntent {
		return ProvenanceIntent
	}
	if dom := entityDomainOf(e); dom != "" {
		if dr, ok := p.m[EntityRef{aarm.EntityDomain, dom}]; ok && dr.inIntent {
			return ProvenanceIntent
		}
	}
	if !ok {
		return ProvenanceAgent
	}
	switch r.first {
	case OriginTrusted:
		return ProvenanceTrusted
	case OriginToolOutput:
		return ProvenanceUntrusted
	case OriginIntent:
		return ProvenanceIntent
	}
	return ProvenanceAgent
}

// entityDomainOf returns the domain of an e-mail address or URL entity.
func entityDomainOf(e EntityRef) string {
	switch e.Kind {
	case aarm.EntityEmail, aarm.EntityRecipient:
		if i := strings.LastIndexByte(e.Value, '@'); i >= 0 {
			return entityCanonDomain(e.Value[i+1:])
		}
	case aarm.EntityURL:
		if _, host, ok := entityCanonURL(e.Value); ok {
			return host
		}
	}
	return ""
}

// NormalizeEntity returns e in the normalised form ExtractEntities
// produces, for entities that come from elsewhere (rule-pack parameters).
func NormalizeEntity(e EntityRef) EntityRef {
	v := strings.TrimSpace(e.Value)
	switch e.Kind {
	case aarm.EntityEmail:
		if i := strings.LastIndexByte(v, '@'); i >= 0 {
			v = strings.ToLower(v[:i]) + "@" + entityCanonDomain(v[i+1:])
		}
	case aarm.EntityRecipient:
		if strings.Contains(v, "@") {
			return NormalizeEntity(EntityRef{aarm.EntityEmail, v})
		}
	case aarm.EntityDomain:
		v = entityCanonDomain(v)
	case aarm.EntityURL:
		if c, _, ok := entityCanonURL(v); ok {
			v = c
		}
	case aarm.EntityAccount:
		c := strings.ToUpper(strings.ReplaceAll(v, " ", ""))
		if ibanValid(c) {
			v = c
		} else if d := piiDigits(v); d != "" {
			v = d
		}
	case aarm.EntityRepo:
		v = strings.ToLower(strings.TrimSuffix(strings.Trim(v, "/"), ".git"))
	case aarm.EntityChannel:
		if strings.HasPrefix(v, "#") {
			v = strings.ToLower(v)
		}
	}
	return EntityRef{Kind: e.Kind, Value: v}
}
