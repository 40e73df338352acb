package inspect

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// This file reads just enough of a GraphQL executable document
// (https://spec.graphql.org/October2021/#sec-Document) to know what a request
// does: which operation runs, whether it is a query, mutation or
// subscription, and which root fields it selects. Arguments, variable
// definitions and nested selections are skipped with bracket matching over
// real tokens, so strings, block strings and comments cannot unbalance it.
// Fragment spreads and inline fragments at the root are resolved, so a
// mutation cannot hide its root field behind "...F".

// maxGraphQLInlineDepth bounds nested inline fragments at the root
// ("... { ... { ... { f } } }"), the only recursion in the parser.
const maxGraphQLInlineDepth = 32

// ParseGraphQL parses a GraphQL request: the document in query, the
// operation to run (operationName; may be empty when the document has exactly
// one operation) and the variables (attached to the result as given). It
// returns the selected operation, with its type ("query" for the anonymous
// "{ ... }" shorthand), name and root fields (aliases resolved to field names,
// fragment spreads and inline fragments at the root expanded, duplicates
// removed, in document order).
//
// Syntax errors, type-system definitions, unknown or cyclic fragments, an
// operationName not in the document, or several operations without an
// operationName, are a *DecodeError at stage "graphql" wrapping ErrMalformed:
// a GraphQL server would refuse them too, and a gate must not guess.
func ParseGraphQL(query, operationName string, variables gjson.Result) ([]GraphQLOperation, error) {
	doc, err := parseGraphQLDocument(query)
	if err != nil {
		return nil, err
	}
	var op *gqlOperation
	switch {
	case operationName != "":
		for i := range doc.ops {
			if doc.ops[i].name == operationName {
				op = &doc.ops[i]
				break
			}
		}
		if op == nil {
			return nil, decodeErr(StageGraphQL, ErrMalformed, "operation %q not found in document", truncateForMsg(operationName))
		}
	case len(doc.ops) == 1:
		op = &doc.ops[0]
	default:
		return nil, decodeErr(StageGraphQL, ErrMalformed, "document has %d operations and no operationName", len(doc.ops))
	}
	fields, err := doc.rootFields(op.sel)
	if err != nil {
		return nil, err
	}
	name := op.name
	if name == "" && len(fields) > 0 {
		name = fields[0]
	}
	return []GraphQLOperation{{Type: op.typ, Name: name, Fields: fields, Variables: variables, Query: query}}, nil
}

// gqlSel is one root selection: a field name, or a fragment spread.
type gqlSel struct {
	field  string
	spread string
}

type gqlOperation struct {
	typ, name string
	sel       []gqlSel
}

type gqlDocument struct {
	ops   []gqlOperation
	frags map[string][]gqlSel
	// resolved memoises fragment expansion, so nested spreads cost
	// linear, not exponential, time.
	resolved map[string][]string
}

// rootFields expands sel into field names, deduplicated in order.
func (d *gqlDocument) rootFields(sel []gqlSel) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	if err := d.expand(sel, map[string]bool{}, func(f string) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (d *gqlDocument) expand(sel []gqlSel, visiting map[string]bool, emit func(string)) error {
	for _, s := range sel {
		if s.spread == "" {
			emit(s.field)
			continue
		}
		if fs, ok := d.resolved[s.spread]; ok {
			for _, f := range fs {
				emit(f)
			}
			continue
		}
		frag, ok := d.frags[s.spread]
		if !ok {
			return decodeErr(StageGraphQL, ErrMalformed, "unknown fragment %q", truncateForMsg(s.spread))
		}
		if visiting[s.spread] {
			return decodeErr(StageGraphQL, ErrMalformed, "fragment %q spreads itself", truncateForMsg(s.spread))
		}
		visiting[s.spread] = true
		// Deduplicated, so that fragments spreading others several times
		// stay small.
		var fs []string
		seen := map[string]bool{}
		if err := d.expand(frag, visiting, func(f string) {
			if !seen[f] {
				seen[f] = true
				fs = append(fs, f)
			}
		}); err != nil {
			return err
		}
		delete(visiting, s.spread)
		if d.resolved == nil {
			d.resolved = map[string][]string{}
		}
		d.resolved[s.spread] = fs
		for _, f := range fs {
			emit(f)
		}
	}
	return nil
}

func parseGraphQLDocument(src string) (*gqlDocument, error) {
	p := &gqlParser{lex: gqlLexer{src: src}}
	p.next()
	doc := &gqlDocument{frags: map[string][]gqlSel{}}
	anonymous := false
	names := map[string]bool{}
	for p.err == nil && p.tok.kind != tokEOF {
		switch {
		case p.isPunct("{"):
			sel := p.selectionSet(0)
			doc.ops = append(doc.ops, gqlOperation{typ: "query", sel: sel})
			anonymous = true
		case p.tok.kind == tokName && (p.tok.val == "query" || p.tok.val == "mutation" || p.tok.val == "subscription"):
			op := gqlOperation{typ: p.tok.val}
			p.next()
			if p.tok.kind == tokName {
				op.name = p.tok.val
				p.next()
			}
			if p.isPunct("(") {
				p.skipBalanced()
			}
			p.directives()
			op.sel = p.selectionSet(0)
			if op.name == "" {
				anonymous = true
			} else if names[op.name] {
				p.fail("operation %q defined twice", truncateForMsg(op.name))
			}
			names[op.name] = true
			doc.ops = append(doc.ops, op)
		case p.tok.kind == tokName && p.tok.val == "fragment":
			p.next()
			name := p.expectName()
			if name == "on" {
				p.fail("fragment cannot be named \"on\"")
			}
			if p.tok.kind != tokName || p.tok.val != "on" {
				p.fail("expected \"on\" after fragment name")
			}
			p.next()
			p.expectName()
			p.directives()
			sel := p.selectionSet(0)
			if _, dup := doc.frags[name]; dup && p.err == nil {
				p.fail("fragment %q defined twice", truncateForMsg(name))
			}
			doc.frags[name] = sel
		default:
			p.fail("expected an operation or fragment definition")
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	if len(doc.ops) == 0 {
		return nil, decodeErr(StageGraphQL, ErrMalformed, "document has no operation")
	}
	if anonymous && len(doc.ops) > 1 {
		return nil, decodeErr(StageGraphQL, ErrMalformed, "anonymous operation must be the only operation")
	}
	return doc, nil
}

type gqlParser struct {
	lex gqlLexer
	tok gqlToken
	err error
}

func (p *gqlParser) next() {
	if p.err != nil {
		p.tok = gqlToken{kind: tokEOF}
		return
	}
	p.tok, p.err = p.lex.next()
}

// fail records the first error, at the current token's position, and stops
// the parse (every loop checks p.err; next returns EOF from then on).
func (p *gqlParser) fail(format string, args ...any) {
	if p.err == nil {
		line, col := p.lex.position(p.tok.pos)
		p.err = decodeErr(StageGraphQL, ErrMalformed, "%d:%d: %s", line, col, fmt.Sprintf(format, args...))
	}
	p.tok = gqlToken{kind: tokEOF}
}

func (p *gqlParser) isPunct(v string) bool { return p.tok.kind == tokPunct && p.tok.val == v }

func (p *gqlParser) expectName() string {
	if p.tok.kind != tokName {
		p.fail("expected a name")
		return ""
	}
	v := p.tok.val
	p.next()
	return v
}

// directives skips "@name(args)" repetitions.
func (p *gqlParser) directives() {
	for p.err == nil && p.isPunct("@") {
		p.next()
		p.expectName()
		if p.isPunct("(") {
			p.skipBalanced()
		}
	}
}

// selectionSet parses "{ selection+ }" at the root of an operation or
// fragment, returning root fields and spreads. Nested selections are skipped.
func (p *gqlParser) selectionSet(depth int) []gqlSel {
	if !p.isPunct("{") {
		p.fail("expected \"{\"")
		return nil
	}
	if depth > maxGraphQLInlineDepth {
		p.fail("inline fragments nested deeper than %d", maxGraphQLInlineDepth)
		return nil
	}
	p.next()
	var sel []gqlSel
	n := 0
	for p.err == nil && !p.isPunct("}") {
		n++
		switch {
		case p.isPunct("..."):
			p.next()
			switch {
			case p.tok.kind == tokName && p.tok.val != "on":
				sel = append(sel, gqlSel{spread: p.tok.val})
				p.next()
				p.directives()
			default:
				// Inline fragment: "... on Type @dir { }", "... @dir { }", "... { }".
				if p.tok.kind == tokName && p.tok.val == "on" {
					p.next()
					p.expectName()
				}
				p.directives()
				sel = append(sel, p.selectionSet(depth+1)...)
			}
		case p.tok.kind == tokName:
			field := p.tok.val
			p.next()
			if p.isPunct(":") {
				p.next()
				field = p.expectName()
			}
			if p.isPunct("(") {
				p.skipBalanced()
			}
			p.directives()
			if p.isPunct("{") {
				p.skipBalanced()
			}
			sel = append(sel, gqlSel{field: field})
		default:
			p.fail("expected a field or fragment")
		}
	}
	if p.err != nil {
		return nil
	}
	if n == 0 {
		p.fail("empty selection set")
		return nil
	}
	p.next() // "}"
	return sel
}

// skipBalanced skips from an opening (, [ or { token to its matching closer.
func (p *gqlParser) skipBalanced() {
	var stack []byte // expected closers
	for p.err == nil {
		if p.tok.kind == tokPunct {
			switch c := p.tok.val[0]; c {
			case '(':
				stack = append(stack, ')')
			case '[':
				stack = append(stack, ']')
			case '{':
				stack = append(stack, '}')
			case ')', ']', '}':
				if len(stack) == 0 || stack[len(stack)-1] != c {
					p.fail("unbalanced %q", p.tok.val)
					return
				}
				stack = stack[:len(stack)-1]
			}
		}
		if p.tok.kind == tokEOF {
			p.fail("unexpected end of document")
			return
		}
		p.next()
		if len(stack) == 0 {
			return
		}
	}
}

// Token kinds.
const (
	tokEOF = iota
	tokName
	tokPunct
	tokString
	tokNumber
)

type gqlToken struct {
	kind int
	val  string
	pos  int
}

// gqlLexer splits a GraphQL document into tokens
// (https://spec.graphql.org/October2021/#sec-Language.Source-Text), skipping
// ignored tokens: white space, line terminators, commas, the BOM and
// comments.
type gqlLexer struct {
	src string
	i   int
}

var errGraphQLSyntax = errors.New("syntax error")

func (l *gqlLexer) next() (gqlToken, error) {
	s := l.src
	for l.i < len(s) {
		c := s[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			l.i++
		case c == '#':
			for l.i < len(s) && s[l.i] != '\n' && s[l.i] != '\r' {
				l.i++
			}
		case strings.HasPrefix(s[l.i:], "\uFEFF"):
			l.i += len("\uFEFF")
		default:
			return l.token()
		}
	}
	return gqlToken{kind: tokEOF, pos: l.i}, nil
}

func (l *gqlLexer) token() (gqlToken, error) {
	s, start := l.src, l.i
	c := s[start]
	switch {
	case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		l.i++
		for l.i < len(s) && isNameByte(s[l.i]) {
			l.i++
		}
		return gqlToken{kind: tokName, val: s[start:l.i], pos: start}, nil
	case c == '-' || c >= '0' && c <= '9':
		l.i++
		for l.i < len(s) {
			d := s[l.i]
			if d >= '0' && d <= '9' || d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-' {
				l.i++
				continue
			}
			break
		}
		if l.i < len(s) && isNameByte(s[l.i]) {
			return gqlToken{}, l.errAt(l.i, "invalid number")
		}
		return gqlToken{kind: tokNumber, val: s[start:l.i], pos: start}, nil
	case strings.HasPrefix(s[start:], `"""`):
		l.i += 3
		for l.i < len(s) {
			switch {
			case strings.HasPrefix(s[l.i:], `\"""`):
				l.i += 4
			case strings.HasPrefix(s[l.i:], `"""`):
				l.i += 3
				return gqlToken{kind: tokString, val: s[start:l.i], pos: start}, nil
			default:
				l.i++
			}
		}
		return gqlToken{}, l.errAt(start, "unterminated block string")
	case c == '"':
		l.i++
		for l.i < len(s) {
			switch s[l.i] {
			case '\\':
				l.i += 2
			case '"':
				l.i++
				return gqlToken{kind: tokString, val: s[start:l.i], pos: start}, nil
			case '\n', '\r':
				return gqlToken{}, l.errAt(start, "unterminated string")
			default:
				l.i++
			}
		}
		return gqlToken{}, l.errAt(start, "unterminated string")
	case c == '.':
		if strings.HasPrefix(s[start:], "...") {
			l.i += 3
			return gqlToken{kind: tokPunct, val: "...", pos: start}, nil
		}
		return gqlToken{}, l.errAt(start, "unexpected \".\"")
	case strings.IndexByte("!$&()[]{}:=@|", c) >= 0:
		l.i++
		return gqlToken{kind: tokPunct, val: s[start:l.i], pos: start}, nil
	}
	return gqlToken{}, l.errAt(start, "unexpected character")
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

func (l *gqlLexer) errAt(pos int, msg string) error {
	line, col := l.position(pos)
	return decodeErr(StageGraphQL, ErrMalformed, "%d:%d: %w: %s", line, col, errGraphQLSyntax, msg)
}

// position turns a byte offset into a 1-based line and column.
func (l *gqlLexer) position(pos int) (line, col int) {
	pos = min(pos, len(l.src))
	line = 1 + strings.Count(l.src[:pos], "\n")
	col = pos - strings.LastIndexByte(l.src[:pos], '\n')
	return line, col
}

// graphQLFromJSON recognises a GraphQL-over-HTTP JSON body: an object with a
// string "query" (plus optional "operationName" and "variables"), or a
// batched array of such objects. It returns nil when j is not shaped like
// one. A GraphQL-shaped body that fails to parse is an error when strict (the
// endpoint is known to be GraphQL) or when the body carries operationName or
// variables; otherwise it is left to be plain JSON.
func graphQLFromJSON(j gjson.Result, strict bool) ([]GraphQLOperation, error) {
	switch {
	case j.IsObject():
		if j.Get("query").Type != gjson.String {
			return nil, nil
		}
		ops, err := graphQLRequest(j)
		if err != nil {
			if strict || j.Get("operationName").Exists() || j.Get("variables").Exists() {
				return nil, err
			}
			return nil, nil
		}
		return ops, nil
	case j.IsArray():
		elems := j.Array()
		if len(elems) == 0 {
			return nil, nil
		}
		for _, e := range elems {
			if !e.IsObject() || e.Get("query").Type != gjson.String {
				return nil, nil
			}
			if e.Get("operationName").Exists() || e.Get("variables").Exists() {
				strict = true
			}
		}
		var ops []GraphQLOperation
		for i, e := range elems {
			op, err := graphQLRequest(e)
			if err != nil {
				if strict {
					return nil, fmt.Errorf("batch element %d: %w", i, err)
				}
				return nil, nil
			}
			ops = append(ops, op...)
		}
		return ops, nil
	}
	return nil, nil
}

// graphQLRequest parses one {query, operationName, variables} object.
func graphQLRequest(j gjson.Result) ([]GraphQLOperation, error) {
	var opName string
	switch on := j.Get("operationName"); on.Type {
	case gjson.String:
		opName = on.Str
	case gjson.Null:
	default:
		return nil, decodeErr(StageGraphQL, ErrMalformed, "operationName is not a string")
	}
	vars := j.Get("variables")
	switch {
	case vars.Type == gjson.String:
		// Some clients send variables as a JSON-encoded string.
		v, err := graphQLVariablesParam(vars.Str)
		if err != nil {
			return nil, err
		}
		vars = v
	case !vars.Exists(), vars.Type == gjson.Null, vars.IsObject():
	default:
		return nil, decodeErr(StageGraphQL, ErrMalformed, "variables is not an object")
	}
	return ParseGraphQL(j.Get("query").Str, opName, vars)
}

// graphQLVariablesParam parses variables given as JSON text (a GET query
// parameter, or a string field): empty means none; otherwise it must be a
// JSON object or null.
func graphQLVariablesParam(s string) (gjson.Result, error) {
	if strings.TrimSpace(s) == "" {
		return gjson.Result{}, nil
	}
	if err := checkJSON(s); err != nil {
		return gjson.Result{}, decodeErr(StageGraphQL, ErrMalformed, "variables: %w", err)
	}
	v := gjson.Parse(s)
	if !v.IsObject() && v.Type != gjson.Null {
		return gjson.Result{}, decodeErr(StageGraphQL, ErrMalformed, "variables is not an object")
	}
	return v, nil
}
