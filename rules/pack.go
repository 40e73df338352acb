package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aarmproxy/aarm"
	"go.yaml.in/yaml/v3"
)

// Sentinel errors of rule-pack loading. A *PackError wraps exactly one of them.
var (
	// ErrPackInvalid is a malformed or invalid rule pack (syntax, type, missing field).
	ErrPackInvalid = errors.New("invalid rule pack")
	// ErrPackUnknownKey is a key the pack format does not define.
	ErrPackUnknownKey = errors.New("unknown key")
	// ErrPackTemplate is a bad host, path or target template.
	ErrPackTemplate = errors.New("bad template")
	// ErrPackDuplicate is an operation defined twice for one tool without override.
	ErrPackDuplicate = errors.New("duplicate operation")
	// ErrPackOverride is an override: true that has nothing to override or
	// appears where overriding is not allowed.
	ErrPackOverride = errors.New("bad override")
	// ErrPackCollision is two operations of different packs that match the same
	// requests with equal specificity.
	ErrPackCollision = errors.New("ambiguous operations")
)

// PackError is a rule-pack load error with the position it was found at.
type PackError struct {
	File  string
	Line  int
	Field string
	Err   error
}

// Error formats the error as "file:line: field: message".
func (e *PackError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error, which wraps one of the ErrPack sentinels.
func (e *PackError) Unwrap() error { return e.Err }

// shapePack is one compiled pack document.
type shapePack struct {
	file            string
	line            int
	tool            string
	description     string
	hosts           []*hostPattern
	external        bool
	caseInsensitive bool
	user            bool
	actions         []*shapeAction
}

// shapePredicate is one query/header/body predicate: exact value, "*" present
// or "!" absent.
type shapePredicate struct {
	key   string
	value string
}

type shapeGraphQL struct{ typ, field, name string }

// shapeParam is one named parameter and where it comes from: the first
// source that has a value wins.
type shapeParam struct {
	name    string
	sources []paramSource
}

// paramSource is one source expression of a parameter.
type paramSource struct {
	source string // "path", "host", "query", "header", "body", "graphql.variables", "graphql.name", "graphql.field", "graphql.type", "jsonrpc.params", "jsonrpc.method", "mime"
	arg    string // the rest of the source expression
}

type shapeEntity struct {
	kind   aarm.EntityKind
	params []string
}

// shapeAction is one compiled operation of a pack.
type shapeAction struct {
	pack            *shapePack
	line            int
	operation       string
	description     string
	methods         []string
	path            *pathTemplate
	caseInsensitive bool
	query           []shapePredicate
	header          []shapePredicate
	body            []shapePredicate
	graphql         *shapeGraphQL
	jsonrpc         string
	effect          aarm.Effect
	target          *targetTemplate
	params          []shapeParam
	entities        []shapeEntity
	override        bool
	replaced        bool
}

func (a *shapeAction) mappingName() string {
	return a.pack.file + "#" + a.pack.tool + "/" + a.operation
}

func (a *shapeAction) predicateCount() int {
	n := len(a.query) + len(a.header) + len(a.body)
	if a.graphql != nil {
		n++
	}
	if a.jsonrpc != "" {
		n++
	}
	if len(a.methods) > 0 {
		n++
	}
	return n
}

var (
	packToolRe      = regexp.MustCompile(`^[a-z0-9_.:-]+$`)
	packOperationRe = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
	packMethodRe    = regexp.MustCompile(`^[A-Z][A-Z-]*$`)
	yamlLineRe      = regexp.MustCompile(`line (\d+)`)
)

// packMaxBytes bounds a single pack file; packs are configuration, not data.
const packMaxBytes = 4 << 20

// packParser walks yaml.Node trees so that every error carries file:line and
// unknown keys are refused (yaml.v3's Node.Decode is not strict).
type packParser struct {
	file string
	user bool
}

func (p *packParser) errAt(n *yaml.Node, field string, sentinel error, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	msg := fmt.Sprintf(format, args...)
	var err error
	if msg == "" {
		err = sentinel
	} else {
		err = fmt.Errorf("%w: %s", sentinel, msg)
	}
	return &PackError{File: p.file, Line: line, Field: field, Err: err}
}

// parsePackFile parses every YAML document of one pack file.
func parsePackFile(file string, data []byte, user bool) ([]*shapePack, error) {
	p := &packParser{file: file, user: user}
	if len(data) > packMaxBytes {
		return nil, p.errAt(nil, "", ErrPackInvalid, "file larger than %d bytes", packMaxBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var packs []*shapePack
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			msg = yamlLineRe.ReplaceAllString(msg, "")
			msg = strings.TrimPrefix(strings.TrimSpace(msg), ": ")
			return nil, &PackError{File: file, Line: line, Err: fmt.Errorf("%w: %s", ErrPackInvalid, msg)}
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		pk, err := p.parsePack(root)
		if err != nil {
			return nil, err
		}
		packs = append(packs, pk)
	}
	if len(packs) == 0 {
		return nil, p.errAt(nil, "", ErrPackInvalid, "no pack document (want tool:, hosts:, actions:)")
	}
	return packs, nil
}

type yamlPair struct {
	key   string
	keyN  *yaml.Node
	value *yaml.Node
}

func (p *packParser) pairs(n *yaml.Node, field string) ([]yamlPair, error) {
	if n.Kind == yaml.AliasNode {
		return nil, p.errAt(n, field, ErrPackInvalid, "YAML aliases are not allowed in rule packs")
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errAt(n, field, ErrPackInvalid, "want a mapping, got %s", yamlKindName(n))
	}
	out := make([]yamlPair, 0, len(n.Content)/2)
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errAt(k, field, ErrPackInvalid, "mapping keys must be strings")
		}
		if v.Kind == yaml.AliasNode {
			return nil, p.errAt(v, joinField(field, k.Value), ErrPackInvalid, "YAML aliases are not allowed in rule packs")
		}
		if k.Value == "<<" {
			return nil, p.errAt(k, field, ErrPackInvalid, "YAML merge keys are not allowed in rule packs")
		}
		if seen[k.Value] {
			return nil, p.errAt(k, joinField(field, k.Value), ErrPackInvalid, "key given twice")
		}
		seen[k.Value] = true
		out = append(out, yamlPair{key: k.Value, keyN: k, value: v})
	}
	return out, nil
}

func yamlKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func joinField(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func (p *packParser) scalar(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errAt(n, field, ErrPackInvalid, "want a string, got %s", yamlKindName(n))
	}
	return n.Value, nil
}

func (p *packParser) boolean(n *yaml.Node, field string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err == nil {
			return b, nil
		}
	}
	return false, p.errAt(n, field, ErrPackInvalid, "want true or false")
}

// stringList accepts one scalar or a list of scalars.
func (p *packParser) stringList(n *yaml.Node, field string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		s, err := p.scalar(n, field)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errAt(n, field, ErrPackInvalid, "want a string or a list of strings, got %s", yamlKindName(n))
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		s, err := p.scalar(c, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *packParser) predicates(n *yaml.Node, field string, canonHeader bool) ([]shapePredicate, error) {
	ps, err := p.pairs(n, field)
	if err != nil {
		return nil, err
	}
	out := make([]shapePredicate, 0, len(ps))
	for _, kv := range ps {
		v, err := p.scalar(kv.value, joinField(field, kv.key))
		if err != nil {
			return nil, err
		}
		key := kv.key
		if key == "" {
			return nil, p.errAt(kv.keyN, field, ErrPackInvalid, "empty key")
		}
		if canonHeader {
			key = canonicalHeaderKey(key)
		}
		out = append(out, shapePredicate{key: key, value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

func (p *packParser) parsePack(n *yaml.Node) (*shapePack, error) {
	ps, err := p.pairs(n, "")
	if err != nil {
		return nil, err
	}
	pk := &shapePack{file: p.file, line: n.Line, external: true, user: p.user}
	var hostsNode, actionsNode, toolNode *yaml.Node
	for _, kv := range ps {
		switch kv.key {
		case "tool":
			toolNode = kv.value
			if pk.tool, err = p.scalar(kv.value, "tool"); err != nil {
				return nil, err
			}
		case "description":
			if pk.description, err = p.scalar(kv.value, "description"); err != nil {
				return nil, err
			}
		case "hosts":
			hostsNode = kv.value
		case "external":
			if pk.external, err = p.boolean(kv.value, "external"); err != nil {
				return nil, err
			}
		case "case_insensitive":
			if pk.caseInsensitive, err = p.boolean(kv.value, "case_insensitive"); err != nil {
				return nil, err
			}
		case "actions":
			actionsNode = kv.value
		default:
			return nil, p.errAt(kv.keyN, kv.key, ErrPackUnknownKey, "%q (want tool, description, hosts, external, case_insensitive, actions)", kv.key)
		}
	}
	if toolNode == nil {
		return nil, p.errAt(n, "tool", ErrPackInvalid, "required")
	}
	if !packToolRe.MatchString(pk.tool) {
		return nil, p.errAt(toolNode, "tool", ErrPackInvalid, "%q: want lower-case letters, digits and _.:-", pk.tool)
	}
	if pk.tool == fallbackTool || pk.tool == llmTool || pk.tool == "mcp" || strings.HasPrefix(pk.tool, "mcp:") {
		return nil, p.errAt(toolNode, "tool", ErrPackInvalid, "%q is reserved for the built-in fallback, LLM and MCP mappings", pk.tool)
	}
	if hostsNode == nil {
		return nil, p.errAt(n, "hosts", ErrPackInvalid, "required: at least one host")
	}
	hosts, err := p.stringList(hostsNode, "hosts")
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, p.errAt(hostsNode, "hosts", ErrPackInvalid, "required: at least one host")
	}
	seenHost := map[string]bool{}
	for i, h := range hosts {
		hp, err := compileHostPattern(h)
		if err != nil {
			return nil, p.errAt(hostsNode, fmt.Sprintf("hosts[%d]", i), ErrPackTemplate, "%v", err)
		}
		if seenHost[hp.canon] {
			return nil, p.errAt(hostsNode, fmt.Sprintf("hosts[%d]", i), ErrPackInvalid, "host %q listed twice", h)
		}
		seenHost[hp.canon] = true
		pk.hosts = append(pk.hosts, hp)
	}
	if actionsNode == nil {
		return nil, p.errAt(n, "actions", ErrPackInvalid, "required: at least one action")
	}
	if actionsNode.Kind != yaml.SequenceNode || len(actionsNode.Content) == 0 {
		return nil, p.errAt(actionsNode, "actions", ErrPackInvalid, "want a non-empty list of actions")
	}
	seenOp := map[string]int{}
	for i, an := range actionsNode.Content {
		field := fmt.Sprintf("actions[%d]", i)
		a, err := p.parseAction(pk, an, field)
		if err != nil {
			return nil, err
		}
		if prev, dup := seenOp[a.operation]; dup {
			return nil, p.errAt(an, field+".operation", ErrPackDuplicate, "%s/%s already defined at line %d", pk.tool, a.operation, prev)
		}
		seenOp[a.operation] = a.line
		pk.actions = append(pk.actions, a)
	}
	return pk, nil
}

var packEntityKinds = map[string]aarm.EntityKind{
	"recipient": aarm.EntityRecipient, "email": aarm.EntityEmail, "domain": aarm.EntityDomain,
	"url": aarm.EntityURL, "account": aarm.EntityAccount, "amount": aarm.EntityAmount,
	"repository": aarm.EntityRepo, "channel": aarm.EntityChannel, "user": aarm.EntityUser,
}

var packMIMEFields = map[string]bool{"to": true, "cc": true, "bcc": true, "subject": true, "text": true, "from": true, "attachments": true}

func (p *packParser) parseAction(pk *shapePack, n *yaml.Node, field string) (*shapeAction, error) {
	ps, err := p.pairs(n, field)
	if err != nil {
		return nil, err
	}
	a := &shapeAction{pack: pk, line: n.Line, caseInsensitive: pk.caseInsensitive}
	var opNode, matchNode, effectNode, targetNode, paramsNode, entitiesNode *yaml.Node
	for _, kv := range ps {
		f := joinField(field, kv.key)
		switch kv.key {
		case "operation":
			opNode = kv.value
			if a.operation, err = p.scalar(kv.value, f); err != nil {
				return nil, err
			}
		case "description":
			if a.description, err = p.scalar(kv.value, f); err != nil {
				return nil, err
			}
		case "match":
			matchNode = kv.value
		case "effect":
			effectNode = kv.value
		case "target":
			targetNode = kv.value
		case "params":
			paramsNode = kv.value
		case "entities":
			entitiesNode = kv.value
		case "override":
			if a.override, err = p.boolean(kv.value, f); err != nil {
				return nil, err
			}
			if a.override && !p.user {
				return nil, p.errAt(kv.value, f, ErrPackOverride, "override: true is only allowed in user packs (rules.paths)")
			}
		default:
			return nil, p.errAt(kv.keyN, f, ErrPackUnknownKey, "%q (want operation, description, match, effect, target, params, entities, override)", kv.key)
		}
	}
	if opNode == nil {
		return nil, p.errAt(n, field+".operation", ErrPackInvalid, "required")
	}
	if !packOperationRe.MatchString(a.operation) {
		return nil, p.errAt(opNode, field+".operation", ErrPackInvalid, "%q: want letters, digits and _.:/-", a.operation)
	}
	if matchNode == nil {
		return nil, p.errAt(n, field+".match", ErrPackInvalid, "required (at least match.path)")
	}
	if err := p.parseMatch(a, matchNode, field+".match"); err != nil {
		return nil, err
	}
	if effectNode == nil {
		return nil, p.errAt(n, field+".effect", ErrPackInvalid, "required: one of read, write, delete, send, execute, spend, admin")
	}
	eff, err := p.scalar(effectNode, field+".effect")
	if err != nil {
		return nil, err
	}
	a.effect = aarm.Effect(eff)
	if !a.effect.Valid() {
		return nil, p.errAt(effectNode, field+".effect", ErrPackInvalid, "%q: want one of read, write, delete, send, execute, spend, admin", eff)
	}
	// Names available to target templates and entities: captures, then params.
	names := map[string]bool{}
	for _, c := range a.path.captureNames() {
		names[c] = true
	}
	hostCaps := map[string]bool{}
	for _, h := range pk.hosts {
		for _, c := range h.captures {
			hostCaps[c] = true
			names[c] = true
		}
	}
	if paramsNode != nil {
		pps, err := p.pairs(paramsNode, field+".params")
		if err != nil {
			return nil, err
		}
		for _, kv := range pps {
			f := field + ".params." + kv.key
			if !templateNameRe.MatchString(kv.key) {
				return nil, p.errAt(kv.keyN, f, ErrPackInvalid, "parameter name %q: want [A-Za-z_][A-Za-z0-9_]*", kv.key)
			}
			if names[kv.key] {
				return nil, p.errAt(kv.keyN, f, ErrPackInvalid, "parameter %q has the name of a path or host capture", kv.key)
			}
			srcs, err := p.stringList(kv.value, f)
			if err != nil {
				return nil, err
			}
			if len(srcs) == 0 {
				return nil, p.errAt(kv.value, f, ErrPackInvalid, "want a source or a list of sources")
			}
			sp := shapeParam{name: kv.key}
			for _, src := range srcs {
				ps, err := parseParamSource(src, a.path, hostCaps)
				if err != nil {
					return nil, p.errAt(kv.value, f, ErrPackInvalid, "%v", err)
				}
				sp.sources = append(sp.sources, ps)
			}
			a.params = append(a.params, sp)
			names[kv.key] = true
		}
	}
	if targetNode != nil {
		ts, err := p.scalar(targetNode, field+".target")
		if err != nil {
			if targetNode.Kind == yaml.ScalarNode && targetNode.Tag == "!!null" {
				ts = ""
			} else {
				return nil, err
			}
		}
		t, err := compileTargetTemplate(ts, names)
		if err != nil {
			return nil, p.errAt(targetNode, field+".target", ErrPackTemplate, "%v", err)
		}
		a.target = t
	}
	if entitiesNode != nil {
		eps, err := p.pairs(entitiesNode, field+".entities")
		if err != nil {
			return nil, err
		}
		for _, kv := range eps {
			f := field + ".entities." + kv.key
			kind, ok := packEntityKinds[kv.key]
			if !ok {
				return nil, p.errAt(kv.keyN, f, ErrPackInvalid, "unknown entity kind %q (want recipient, email, domain, url, account, amount, repository, channel, user)", kv.key)
			}
			list, err := p.stringList(kv.value, f)
			if err != nil {
				return nil, err
			}
			for _, pn := range list {
				if !names[pn] {
					return nil, p.errAt(kv.value, f, ErrPackInvalid, "%q is not a parameter or capture of this action", pn)
				}
			}
			a.entities = append(a.entities, shapeEntity{kind: kind, params: list})
		}
	}
	return a, nil
}

func parseParamSource(src string, path *pathTemplate, hostCaps map[string]bool) (paramSource, error) {
	sp := paramSource{}
	head, rest, _ := strings.Cut(src, ".")
	switch head {
	case "path":
		if rest == "" || !containsString(path.captureNames(), rest) {
			return sp, fmt.Errorf("source %q: path.%s is not a capture of match.path", src, rest)
		}
		sp.source, sp.arg = "path", rest
	case "host":
		if rest == "" || !hostCaps[rest] {
			return sp, fmt.Errorf("source %q: host.%s is not a capture of this pack's host templates", src, rest)
		}
		sp.source, sp.arg = "host", rest
	case "query":
		sp.source, sp.arg = "query", rest
	case "header":
		sp.source, sp.arg = "header", canonicalHeaderKey(rest)
	case "body":
		sp.source, sp.arg = "body", rest
	case "graphql":
		sub, arg, _ := strings.Cut(rest, ".")
		switch sub {
		case "variables":
			sp.source, sp.arg = "graphql.variables", arg
		case "name", "field", "type":
			if arg != "" {
				return sp, fmt.Errorf("source %q: graphql.%s takes no path", src, sub)
			}
			sp.source = "graphql." + sub
			return sp, nil
		default:
			return sp, fmt.Errorf("source %q: want graphql.variables.<path>, graphql.name, graphql.field or graphql.type", src)
		}
	case "jsonrpc":
		sub, arg, _ := strings.Cut(rest, ".")
		switch sub {
		case "params":
			sp.source, sp.arg = "jsonrpc.params", arg
		case "method":
			if arg != "" {
				return sp, fmt.Errorf("source %q: jsonrpc.method takes no path", src)
			}
			sp.source = "jsonrpc.method"
			return sp, nil
		default:
			return sp, fmt.Errorf("source %q: want jsonrpc.params.<path> or jsonrpc.method", src)
		}
	case "mime":
		if !packMIMEFields[rest] {
			return sp, fmt.Errorf("source %q: want mime.to, mime.cc, mime.bcc, mime.from, mime.subject, mime.text or mime.attachments", src)
		}
		sp.source, sp.arg = "mime", rest
		return sp, nil
	default:
		return sp, fmt.Errorf("source %q: want path.X, host.X, query.X, header.X, body.<path>, graphql.variables.<path>, graphql.name, graphql.field, jsonrpc.params.<path>, jsonrpc.method or mime.X", src)
	}
	if sp.arg == "" && sp.source != "graphql.variables" && sp.source != "jsonrpc.params" {
		return sp, fmt.Errorf("source %q: missing the name or path after %q", src, head)
	}
	return sp, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *packParser) parseMatch(a *shapeAction, n *yaml.Node, field string) error {
	ps, err := p.pairs(n, field)
	if err != nil {
		return err
	}
	var pathNode *yaml.Node
	for _, kv := range ps {
		f := joinField(field, kv.key)
		switch kv.key {
		case "method":
			ms, err := p.stringList(kv.value, f)
			if err != nil {
				return err
			}
			for _, m := range ms {
				m = strings.ToUpper(strings.TrimSpace(m))
				if !packMethodRe.MatchString(m) {
					return p.errAt(kv.value, f, ErrPackInvalid, "%q is not an HTTP method", m)
				}
				if !containsString(a.methods, m) {
					a.methods = append(a.methods, m)
				}
			}
			sort.Strings(a.methods)
		case "path":
			pathNode = kv.value
		case "case_insensitive":
			if a.caseInsensitive, err = p.boolean(kv.value, f); err != nil {
				return err
			}
		case "query":
			if a.query, err = p.predicates(kv.value, f, false); err != nil {
				return err
			}
		case "header":
			if a.header, err = p.predicates(kv.value, f, true); err != nil {
				return err
			}
		case "body":
			if a.body, err = p.predicates(kv.value, f, false); err != nil {
				return err
			}
		case "graphql":
			gps, err := p.pairs(kv.value, f)
			if err != nil {
				return err
			}
			g := &shapeGraphQL{}
			for _, g2 := range gps {
				v, err := p.scalar(g2.value, joinField(f, g2.key))
				if err != nil {
					return err
				}
				switch g2.key {
				case "type":
					if v != "query" && v != "mutation" && v != "subscription" {
						return p.errAt(g2.value, joinField(f, g2.key), ErrPackInvalid, "%q: want query, mutation or subscription", v)
					}
					g.typ = v
				case "field":
					g.field = v
				case "name":
					g.name = v
				default:
					return p.errAt(g2.keyN, joinField(f, g2.key), ErrPackUnknownKey, "%q (want type, field, name)", g2.key)
				}
			}
			a.graphql = g
		case "jsonrpc":
			jps, err := p.pairs(kv.value, f)
			if err != nil {
				return err
			}
			for _, j := range jps {
				if j.key != "method" {
					return p.errAt(j.keyN, joinField(f, j.key), ErrPackUnknownKey, "%q (want method)", j.key)
				}
				if a.jsonrpc, err = p.scalar(j.value, joinField(f, j.key)); err != nil {
					return err
				}
			}
			if a.jsonrpc == "" {
				return p.errAt(kv.value, f+".method", ErrPackInvalid, "required")
			}
		default:
			return p.errAt(kv.keyN, f, ErrPackUnknownKey, "%q (want method, path, case_insensitive, query, header, body, graphql, jsonrpc)", kv.key)
		}
	}
	if pathNode == nil {
		return p.errAt(n, field+".path", ErrPackInvalid, "required")
	}
	ps2, err := p.scalar(pathNode, field+".path")
	if err != nil {
		return err
	}
	pt, err := compilePathTemplate(ps2)
	if err != nil {
		return p.errAt(pathNode, field+".path", ErrPackTemplate, "%v", err)
	}
	a.path = pt
	return nil
}

// canonicalHeaderKey is the canonical MIME header form ("content-type" →
// "Content-Type"), as net/http stores header names.
func canonicalHeaderKey(s string) string { return textproto.CanonicalMIMEHeaderKey(s) }
