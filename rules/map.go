// Package rules turns requests into AARM actions and judges them.
//
// The request-shape half (this file, pack*.go, mcp.go, llm.go) maps a
// decoded request to actions with rule packs — the catalog embedded from
// rules/catalog/*.yaml (format in rules/catalog/README.md) plus user packs —
// recognises MCP and LLM provider traffic on any host, and falls back to a
// generic "http" action for requests no pack knows. The policy half
// (policy*.go, eval*.go) decides on those actions.
package rules

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
)

// builtinCatalog is the request-shape catalog shipped in the binary
// (rules/catalog/*.yaml; format in rules/catalog/README.md).
//
//go:embed catalog/*.yaml
var builtinCatalog embed.FS

// Names the mapping reserves for itself.
const (
	fallbackTool    = "http"
	llmTool         = "llm"
	fallbackMapping = "fallback"
)

// ErrUnmappable is wrapped by every *MappingError: the request has a shape the
// catalog recognised (or must recognise) but its content cannot be turned
// into an action. The gate denies such requests with the error as reason.
var ErrUnmappable = errors.New("request cannot be mapped to an action")

// MappingError says which mapping and which parameter failed, and why.
type MappingError struct {
	// Mapping is the rule that matched ("catalog/gmail.yaml#gmail/messages.send",
	// "mcp#tools/call") or empty when none was reached.
	Mapping string
	// Param is the parameter whose extraction failed, if any.
	Param string
	// Source is the parameter's source expression ("mime.to").
	Source string
	// Err wraps ErrUnmappable.
	Err error
}

// Error describes the failure for a deny reason.
func (e *MappingError) Error() string {
	var b strings.Builder
	if e.Mapping != "" {
		b.WriteString(e.Mapping)
		b.WriteString(": ")
	}
	if e.Param != "" {
		fmt.Fprintf(&b, "parameter %s (%s): ", e.Param, e.Source)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause, which wraps ErrUnmappable.
func (e *MappingError) Unwrap() error { return e.Err }

func unmappable(mapping, format string, args ...any) *MappingError {
	return &MappingError{Mapping: mapping, Err: fmt.Errorf("%w: %s", ErrUnmappable, fmt.Sprintf(format, args...))}
}

// CatalogOptions selects the rule packs of a Catalog and how destinations are
// classified.
type CatalogOptions struct {
	// Builtin includes the embedded catalog.
	Builtin bool
	// Paths are user pack files or directories (*.yaml, *.yml, searched
	// recursively in lexical order), loaded after the built-in catalog.
	Paths []string
	// InternalDomains are hosts that are not external: "corp.example.com"
	// (the host and its subdomains), "*.internal" (subdomains only).
	InternalDomains []string
	// MCPServers names MCP servers: key "host", "host:port" or a URL prefix
	// ("https://tools.example.com/github/"), value the server name. Without
	// an entry the host is the server name.
	MCPServers map[string]string
	// MCPMetaTools lists wrapper tool names resolved to the tool they name
	// (nil: DefaultMCPMetaTools).
	MCPMetaTools []string
	// LLMHosts are the organisation's own model endpoints (vLLM, LiteLLM,
	// Ollama, a provider not built in): "llm.example.com" (exact) or
	// "*.llm.example.com" (subdomains). An LLM-shaped request to one of them
	// is mapped with parameters.provider_known true, as for the built-in
	// provider hosts; elsewhere it is false.
	LLMHosts []string
}

// Catalog is a compiled, immutable set of rule packs. It is safe for
// concurrent use.
type Catalog struct {
	packs      []*shapePack
	byHost     map[string][]*shapePack
	patterned  []*shapePack
	internal   []string // normalised: "corp.example.com" or ".internal" (suffix only)
	mcpServers []mcpServerName
	mcpMeta    map[string]bool
	llmHosts   []string // normalised: "llm.example.com" or ".example.com" (suffix only)
}

// LoadCatalog loads and compiles the built-in catalog and user packs. Errors
// are *PackError values naming file:line and field; user packs may replace a
// built-in operation only with override: true.
func LoadCatalog(opts CatalogOptions) (*Catalog, error) {
	var packs []*shapePack
	if opts.Builtin {
		bp, err := loadBuiltinPacks()
		if err != nil {
			return nil, err
		}
		packs = append(packs, bp...)
	}
	for _, p := range opts.Paths {
		up, err := loadUserPacks(p)
		if err != nil {
			return nil, err
		}
		packs = append(packs, up...)
	}
	c, err := compileCatalog(packs)
	if err != nil {
		return nil, err
	}
	for _, d := range opts.InternalDomains {
		d = strings.TrimSpace(d)
		switch {
		case d == "":
			continue
		case strings.HasPrefix(d, "*."):
			c.internal = append(c.internal, "."+normalizeHost(d[2:]))
		case strings.HasPrefix(d, "."):
			c.internal = append(c.internal, "."+normalizeHost(d[1:]))
		default:
			c.internal = append(c.internal, normalizeHost(d))
		}
	}
	if err := c.setMCP(opts.MCPServers, opts.MCPMetaTools); err != nil {
		return nil, err
	}
	if err := c.setLLMHosts(opts.LLMHosts); err != nil {
		return nil, err
	}
	return c, nil
}

func loadBuiltinPacks() ([]*shapePack, error) {
	names, err := fs.Glob(builtinCatalog, "catalog/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var packs []*shapePack
	for _, n := range names {
		data, err := builtinCatalog.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ps, err := parsePackFile(n, data, false)
		if err != nil {
			return nil, err
		}
		packs = append(packs, ps...)
	}
	return packs, nil
}

func loadUserPacks(p string) ([]*shapePack, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, &PackError{File: p, Field: "rules.paths", Err: fmt.Errorf("%w: %v", ErrPackInvalid, err)}
	}
	var files []string
	if fi.IsDir() {
		err := filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(fp, ".yaml") || strings.HasSuffix(fp, ".yml")) {
				files = append(files, fp)
			}
			return nil
		})
		if err != nil {
			return nil, &PackError{File: p, Field: "rules.paths", Err: fmt.Errorf("%w: %v", ErrPackInvalid, err)}
		}
	} else {
		files = []string{p}
	}
	var packs []*shapePack
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &PackError{File: f, Err: fmt.Errorf("%w: %v", ErrPackInvalid, err)}
		}
		ps, err := parsePackFile(f, data, true)
		if err != nil {
			return nil, err
		}
		packs = append(packs, ps...)
	}
	return packs, nil
}

// compileCatalog applies overrides, refuses duplicate operations and
// ambiguous shapes, and indexes packs by host.
func compileCatalog(packs []*shapePack) (*Catalog, error) {
	type opKey struct{ tool, op string }
	defined := map[opKey]*shapeAction{}
	for _, pk := range packs {
		for _, a := range pk.actions {
			k := opKey{pk.tool, a.operation}
			prev, ok := defined[k]
			switch {
			case ok && a.override:
				prev.replaced = true
			case ok:
				return nil, &PackError{File: pk.file, Line: a.line, Field: "operation",
					Err: fmt.Errorf("%w: %s/%s is already defined at %s:%d (a user pack may replace it with override: true)", ErrPackDuplicate, pk.tool, a.operation, prev.pack.file, prev.line)}
			case a.override:
				return nil, &PackError{File: pk.file, Line: a.line, Field: "override",
					Err: fmt.Errorf("%w: override: true but no earlier pack defines %s/%s", ErrPackOverride, pk.tool, a.operation)}
			}
			defined[k] = a
		}
	}
	// Collisions: identical host pattern, path shape and predicates, with
	// overlapping methods, in different packs.
	type shapeKey struct{ host, path, preds string }
	shapes := map[shapeKey][]*shapeAction{}
	for _, pk := range packs {
		for _, a := range pk.actions {
			if a.replaced {
				continue
			}
			preds := a.predicateText()
			for _, h := range pk.hosts {
				k := shapeKey{h.canon, a.path.canon, preds}
				for _, other := range shapes[k] {
					if other.pack != pk && methodsOverlap(other.methods, a.methods) {
						return nil, &PackError{File: pk.file, Line: a.line, Field: "match",
							Err: fmt.Errorf("%w: %s/%s matches the same requests (host %s, path %s) as %s/%s at %s:%d", ErrPackCollision, pk.tool, a.operation, h.canon, a.path.text, other.pack.tool, other.operation, other.pack.file, other.line)}
					}
				}
				shapes[k] = append(shapes[k], a)
			}
		}
	}
	c := &Catalog{packs: packs, byHost: map[string][]*shapePack{}}
	for _, pk := range packs {
		patterned := false
		for _, h := range pk.hosts {
			if h.class == hostExact {
				c.byHost[h.exact] = append(c.byHost[h.exact], pk)
			} else {
				patterned = true
			}
		}
		if patterned {
			c.patterned = append(c.patterned, pk)
		}
	}
	return c, nil
}

func (a *shapeAction) predicateText() string {
	var b strings.Builder
	for _, p := range a.query {
		fmt.Fprintf(&b, "q:%s=%s;", p.key, p.value)
	}
	for _, p := range a.header {
		fmt.Fprintf(&b, "h:%s=%s;", p.key, p.value)
	}
	for _, p := range a.body {
		fmt.Fprintf(&b, "b:%s=%s;", p.key, p.value)
	}
	if g := a.graphql; g != nil {
		fmt.Fprintf(&b, "g:%s/%s/%s;", g.typ, g.field, g.name)
	}
	if a.jsonrpc != "" {
		fmt.Fprintf(&b, "j:%s;", a.jsonrpc)
	}
	return b.String()
}

func methodsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, m := range a {
		if containsString(b, m) {
			return true
		}
	}
	return false
}

// Mapping is the result of mapping one request: at least one action (more
// for GraphQL and JSON-RPC batches), and the LLM exchange for provider calls.
type Mapping struct {
	// Actions have Tool, Operation, Effect, Target, Destination, Method,
	// Path, Parameters, Entities and Mapping filled; ID, Timestamp,
	// Identity, RiskSignals and ContentDigest are the caller's.
	Actions []aarm.Action `json:"actions"`
	// Matches explain each action, in the same order.
	Matches []MappingMatch `json:"matches,omitempty"`
	// LLM is non-nil for LLM provider requests.
	LLM *LLMExchange `json:"llm,omitempty"`
}

// MappingMatch records which rule produced an action and why it won.
type MappingMatch struct {
	Mapping   string `json:"mapping"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	Tool      string `json:"tool"`
	Operation string `json:"operation"`
	// HostPattern and PathTemplate are the pack entries that matched.
	HostPattern  string `json:"host_pattern,omitempty"`
	PathTemplate string `json:"path_template,omitempty"`
	// Candidates is how many packs had a matching operation.
	Candidates int    `json:"candidates,omitempty"`
	Why        string `json:"why"`
}

// mapState is one request being mapped.
type mapState struct {
	c      *Catalog
	req    *inspect.Request
	query  url.Values
	host   string
	dest   aarm.Destination
	method string
	path   string
	segs   []string

	mimeDone bool
	mime     *inspect.MIMEMessage
	mimeErr  error
}

// shapeUnit is the part of a request one action is matched for: the whole
// request, one root field of one GraphQL operation, or one JSON-RPC message.
type shapeUnit struct {
	index int
	gql   *inspect.GraphQLOperation
	field string
	rpc   *inspect.JSONRPCMessage
}

// Map maps a decoded request to actions. It is pure: the same request and
// catalog give the same mapping. A request whose shape matched but whose
// content cannot be read as the rule says returns a *MappingError.
func (c *Catalog) Map(req *inspect.Request) (*Mapping, error) {
	if req == nil || req.URL == nil {
		return nil, unmappable("", "no request URL")
	}
	ms := c.newMapState(req)
	if ms.host == "" {
		return nil, unmappable("", "request URL has no host")
	}
	if m, ok, err := ms.mapMCP(); ok || err != nil {
		return m, err
	}
	if m, ok, err := ms.mapLLM(); ok || err != nil {
		return m, err
	}
	return ms.mapCatalog()
}

func (c *Catalog) newMapState(req *inspect.Request) *mapState {
	ms := &mapState{c: c, req: req, query: req.Query}
	if ms.query == nil {
		ms.query = req.URL.Query()
	}
	ms.host = normalizeHost(req.URL.Hostname())
	scheme := strings.ToLower(req.URL.Scheme)
	port := req.URL.Port()
	if port == "" {
		switch scheme {
		case "https", "wss":
			port = "443"
		case "http", "ws":
			port = "80"
		}
	}
	ms.dest = aarm.Destination{Host: ms.host, Port: port, Scheme: scheme, External: !c.isInternal(ms.host)}
	ms.method = effectiveMethod(req.Method, req.Header, ms.query)
	ms.path = req.URL.EscapedPath()
	if ms.path == "" {
		ms.path = "/"
	}
	ms.segs = splitRequestPath(ms.path)
	return ms
}

// effectiveMethod honours X-HTTP-Method-Override, X-HTTP-Method,
// X-Method-Override and a _method query parameter, but only on POST (the
// only method such overrides are conventionally tunnelled through), and
// never to a safe method: a server that ignores the override performs the
// POST, so mapping "POST + override GET" as a read would let a write pass as
// a read. Such a request is mapped as the POST it is; over-estimating is
// the safe direction.
func effectiveMethod(method string, h map[string][]string, q url.Values) string {
	m := strings.ToUpper(strings.TrimSpace(method))
	if m == "" {
		m = "GET"
	}
	if m != "POST" {
		return m
	}
	override := ""
	for _, k := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
		if v := firstHeader(h, k); v != "" {
			override = v
			break
		}
	}
	if override == "" {
		override = q.Get("_method")
	}
	override = strings.ToUpper(strings.TrimSpace(override))
	switch override {
	case "", "GET", "HEAD", "OPTIONS":
		return m
	}
	return override
}

func firstHeader(h map[string][]string, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// isInternal reports whether host is inside the organisation: listed in
// internal_domains, or a loopback, private or link-local address, or localhost.
func (c *Catalog) isInternal(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()
	}
	for _, d := range c.internal {
		if strings.HasPrefix(d, ".") {
			if strings.HasSuffix(host, d) {
				return true
			}
			continue
		}
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func (ms *mapState) units() []shapeUnit {
	req := ms.req
	var units []shapeUnit
	switch {
	case len(req.GraphQL) > 0:
		for i := range req.GraphQL {
			op := &req.GraphQL[i]
			if len(op.Fields) == 0 {
				units = append(units, shapeUnit{index: i, gql: op})
				continue
			}
			for _, f := range op.Fields {
				units = append(units, shapeUnit{index: i, gql: op, field: f})
			}
		}
	case len(req.JSONRPC) > 0:
		for i := range req.JSONRPC {
			units = append(units, shapeUnit{index: i, rpc: &req.JSONRPC[i]})
		}
	default:
		units = []shapeUnit{{}}
	}
	return units
}

// candidate is an operation that matched a unit, with its specificity.
type candidate struct {
	action   *shapeAction
	host     *hostPattern
	caps     map[string]string
	hostCaps map[string]string
	score    [5]int
}

func scoreLess(a, b [5]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// best finds the winning operation for a unit: the first match of each pack
// in file order, then the most specific across packs (ties: load order).
func (ms *mapState) best(u shapeUnit) (*candidate, int) {
	var best *candidate
	n := 0
	visit := func(pk *shapePack) {
		var hp *hostPattern
		var hostCaps map[string]string
		for _, h := range pk.hosts {
			if caps, ok := h.match(ms.host); ok && (hp == nil || h.class > hp.class) {
				hp, hostCaps = h, caps
			}
		}
		if hp == nil {
			return
		}
		for _, a := range pk.actions {
			if a.replaced {
				continue
			}
			caps, ok := ms.matchAction(a, u)
			if !ok {
				continue
			}
			n++
			lit, part, capN := a.path.specificity()
			cand := &candidate{action: a, host: hp, caps: caps, hostCaps: hostCaps,
				score: [5]int{hp.class, lit, part, -capN, a.predicateCount()}}
			if best == nil || scoreLess(best.score, cand.score) {
				best = cand
			}
			return
		}
	}
	seen := map[*shapePack]bool{}
	for _, pk := range ms.c.byHost[ms.host] {
		if !seen[pk] {
			seen[pk] = true
			visit(pk)
		}
	}
	for _, pk := range ms.c.patterned {
		if !seen[pk] {
			seen[pk] = true
			visit(pk)
		}
	}
	return best, n
}

func (ms *mapState) matchAction(a *shapeAction, u shapeUnit) (map[string]string, bool) {
	if len(a.methods) > 0 && !containsString(a.methods, ms.method) {
		return nil, false
	}
	caps, ok := a.path.match(ms.segs, a.caseInsensitive)
	if !ok {
		return nil, false
	}
	for _, p := range a.query {
		vs, present := ms.query[p.key]
		if !predicateHolds(p.value, present, firstOf(vs)) {
			return nil, false
		}
	}
	for _, p := range a.header {
		vs, present := ms.req.Header[p.key]
		v := firstOf(vs)
		if p.key == "Content-Type" {
			// Compare media types without parameters.
			v = strings.TrimSpace(strings.ToLower(strings.SplitN(v, ";", 2)[0]))
		}
		if !predicateHolds(p.value, present, v) {
			return nil, false
		}
	}
	for _, p := range a.body {
		v, present := ms.bodyText(p.key)
		if !predicateHolds(p.value, present, v) {
			return nil, false
		}
	}
	if g := a.graphql; g != nil {
		if u.gql == nil {
			return nil, false
		}
		if g.typ != "" && u.gql.Type != g.typ || g.field != "" && u.field != g.field || g.name != "" && u.gql.Name != g.name {
			return nil, false
		}
	}
	if a.jsonrpc != "" {
		if u.rpc == nil || !globMatch(a.jsonrpc, u.rpc.Method) {
			return nil, false
		}
	}
	return caps, true
}

func firstOf(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// predicateHolds applies one predicate: "*" present, "!" absent, else equal.
func predicateHolds(want string, present bool, got string) bool {
	switch want {
	case "*":
		return present
	case "!":
		return !present
	}
	return present && got == want
}

// globMatch matches a value against a pattern with an optional final "*".
func globMatch(pattern, s string) bool {
	if strings.HasSuffix(pattern, "*") {
		return strings.HasPrefix(s, pattern[:len(pattern)-1])
	}
	return pattern == s
}

// isRequestLevel reports whether an action describes the request as a whole
// rather than one GraphQL operation or JSON-RPC message.
func (a *shapeAction) isRequestLevel() bool {
	if a.graphql != nil || a.jsonrpc != "" {
		return false
	}
	for _, p := range a.params {
		for _, s := range p.sources {
			if strings.HasPrefix(s.source, "graphql.") || strings.HasPrefix(s.source, "jsonrpc.") {
				return false
			}
		}
	}
	return true
}

func (ms *mapState) mapCatalog() (*Mapping, error) {
	m := &Mapping{}
	type seenKey struct {
		index   int
		mapping string
	}
	seen := map[seenKey]bool{}
	fellBack := false
	for _, u := range ms.units() {
		cand, n := ms.best(u)
		if cand == nil {
			if !fellBack {
				fellBack = true
				act, match := ms.fallback()
				m.Actions = append(m.Actions, act)
				m.Matches = append(m.Matches, match)
			}
			continue
		}
		a := cand.action
		k := seenKey{u.index, a.mappingName()}
		if a.isRequestLevel() {
			k.index = -1
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		act, err := ms.buildAction(cand, u)
		if err != nil {
			return nil, err
		}
		m.Actions = append(m.Actions, act)
		m.Matches = append(m.Matches, ms.explainMatch(cand, u, n))
	}
	return m, nil
}

func (ms *mapState) explainMatch(cand *candidate, u shapeUnit, n int) MappingMatch {
	a := cand.action
	var why []string
	why = append(why, fmt.Sprintf("host %s matched %s (%s)", ms.host, cand.host.canon, hostClassName(cand.host.class)))
	meth := "any method"
	if len(a.methods) > 0 {
		meth = strings.Join(a.methods, "|")
	}
	why = append(why, fmt.Sprintf("%s %s matched %s %s", ms.method, ms.path, meth, a.path.text))
	if pt := a.predicateText(); pt != "" {
		why = append(why, "predicates "+strings.TrimSuffix(pt, ";"))
	}
	if u.gql != nil {
		why = append(why, fmt.Sprintf("GraphQL %s %s field %s", u.gql.Type, u.gql.Name, u.field))
	}
	if u.rpc != nil {
		why = append(why, "JSON-RPC method "+u.rpc.Method)
	}
	why = append(why, "first match in its pack")
	if n > 1 {
		why = append(why, fmt.Sprintf("most specific of %d packs' matches", n))
	}
	return MappingMatch{
		Mapping: a.mappingName(), File: a.pack.file, Line: a.line, Tool: a.pack.tool, Operation: a.operation,
		HostPattern: cand.host.canon, PathTemplate: a.path.text, Candidates: n, Why: strings.Join(why, "; "),
	}
}

func hostClassName(c int) string {
	switch c {
	case hostExact:
		return "exact"
	case hostTemplate:
		return "template"
	}
	return "wildcard"
}

// fallback is the action for a request no pack matches.
func (ms *mapState) fallback() (aarm.Action, MappingMatch) {
	op := "http." + strings.ToLower(ms.method)
	act := aarm.Action{
		Tool: fallbackTool, Operation: op, Effect: effectByMethod(ms.method), Target: ms.host,
		Destination: ms.dest, Method: ms.method, Path: ms.path, Mapping: fallbackMapping,
	}
	if n := len(ms.req.Body); n > 0 {
		act.Parameters = map[string]any{"body_bytes": n}
		if ms.req.ContentType != "" {
			act.Parameters["content_type"] = ms.req.ContentType
		}
	}
	return act, MappingMatch{Mapping: fallbackMapping, Tool: fallbackTool, Operation: op,
		Why: fmt.Sprintf("no pack matches %s %s%s; generic fallback, effect by method", ms.method, ms.host, ms.path)}
}

// effectByMethod is the fallback effect: safe methods read, DELETE deletes,
// everything else (including unknown methods) writes.
func effectByMethod(m string) aarm.Effect {
	switch m {
	case "GET", "HEAD", "OPTIONS":
		return aarm.EffectRead
	case "DELETE":
		return aarm.EffectDelete
	}
	return aarm.EffectWrite
}

func (ms *mapState) buildAction(cand *candidate, u shapeUnit) (aarm.Action, error) {
	a := cand.action
	values := make(map[string]any, len(cand.caps)+len(cand.hostCaps)+len(a.params))
	for k, v := range cand.hostCaps {
		values[k] = v
	}
	for k, v := range cand.caps {
		values[k] = v
	}
	for _, p := range a.params {
		for _, src := range p.sources {
			v, ok, err := ms.extractParam(src, cand, u)
			if err != nil {
				return aarm.Action{}, &MappingError{Mapping: a.mappingName(), Param: p.name, Source: src.text(), Err: err}
			}
			if ok {
				values[p.name] = v
				break
			}
		}
	}
	act := aarm.Action{
		Tool: a.pack.tool, Operation: a.operation, Effect: a.effect, Target: a.target.render(values),
		Destination: ms.dest, Method: ms.method, Path: ms.path, Mapping: a.mappingName(),
	}
	act.Destination.External = a.pack.external && ms.dest.External
	if len(values) > 0 {
		act.Parameters = values
	}
	act.Entities = entitiesFrom(a.entities, values)
	return act, nil
}

func (p paramSource) text() string {
	switch p.source {
	case "graphql.name", "graphql.field", "graphql.type", "jsonrpc.method":
		return p.source
	}
	if p.arg == "" {
		return p.source
	}
	return p.source + "." + p.arg
}

// entitiesFrom lists the entities named by the action's entity rules, in
// rule order, without duplicates.
func entitiesFrom(rules []shapeEntity, values map[string]any) []aarm.Entity {
	var out []aarm.Entity
	seen := map[[2]string]bool{}
	for _, r := range rules {
		for _, pn := range r.params {
			for _, raw := range valueStrings(values[pn]) {
				for _, s := range splitEntityList(r.kind, raw) {
					s = normalizeEntity(r.kind, s)
					if s == "" || seen[[2]string{string(r.kind), s}] {
						continue
					}
					seen[[2]string{string(r.kind), s}] = true
					out = append(out, aarm.Entity{Kind: r.kind, Value: s, Param: pn})
				}
			}
		}
	}
	return out
}
