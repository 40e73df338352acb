package inspect

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/transform"
)

// content is what request and response decoding share: a body with its
// content coding and charset removed, understood according to its type.
type content struct {
	ctype   string
	params  map[string]string
	body    []byte
	kind    BodyKind
	json    gjson.Result
	ndjson  []gjson.Result
	form    url.Values
	files   []File
	graphql []GraphQLOperation
	jsonrpc []JSONRPCMessage
	mime    *MIMEMessage
	events  []SSEEvent
}

// hints carry what the surrounding message says about its body.
type hints struct {
	// request is true for requests: GraphQL is only looked for there.
	request bool
	// graphql is true when the URL says the endpoint speaks GraphQL
	// (its path mentions "graphql"): GraphQL-shaped bodies that do not
	// parse are then errors rather than plain JSON.
	graphql bool
	// gmail is true when the URL is a Gmail API path: a "raw" field that
	// does not decode as a MIME message is then an error.
	gmail bool
	// query is the request's parsed URL query (application/graphql bodies
	// take operationName and variables from it).
	query url.Values
}

// decodeContent removes content codings and the charset, then parses the
// body according to its Content-Type (or, when that is missing or generic, by
// sniffing JSON).
func decodeContent(h http.Header, raw []byte, lim Limits, hn hints) (*content, error) {
	lim = lim.withDefaults()
	body, err := DecodeBody(strings.Join(h.Values("Content-Encoding"), ","), raw, lim)
	if err != nil {
		return nil, err
	}
	c := &content{body: body}
	c.ctype, c.params = parseContentType(h.Get("Content-Type"))
	if len(body) == 0 {
		c.kind = KindEmpty
		return c, nil
	}
	if strings.HasPrefix(c.ctype, "multipart/") {
		// Parts carry their own charsets.
		return c, c.decodeMultipart(lim)
	}
	if cs := c.params["charset"]; cs != "" {
		if c.body, err = toUTF8(c.body, cs, lim.MaxBody, StageCharset); err != nil {
			return nil, err
		}
	}
	c.body = bytes.TrimPrefix(c.body, utf8BOM)
	if len(c.body) == 0 {
		c.kind = KindEmpty
		return c, nil
	}

	switch {
	case isJSONType(c.ctype):
		return c, c.decodeJSON(true, lim, hn)
	case isNDJSONType(c.ctype):
		return c, c.decodeNDJSON()
	case c.ctype == "application/graphql" && hn.request:
		return c, c.decodeGraphQLText(hn)
	case c.ctype == "application/x-www-form-urlencoded":
		form, err := parseQuery(string(c.body), StageForm)
		if err != nil {
			return nil, err
		}
		c.kind, c.form = KindForm, form
		return c, nil
	case c.ctype == "text/event-stream":
		c.kind = KindSSE
		c.events, c.jsonrpc = parseSSE(c.body)
		return c, nil
	case c.ctype == "message/rfc822":
		m, err := DecodeMIME(c.body)
		if err != nil {
			return nil, err
		}
		c.kind, c.mime = KindMIME, m
		return c, nil
	}
	// Missing, generic or wrong Content-Type: a body that is valid JSON is
	// treated as JSON (agents often post JSON as text/plain or without a
	// type); anything else is text or binary.
	if looksJSON(c.body) {
		if err := c.decodeJSON(false, lim, hn); err != nil || c.kind != "" {
			return c, err
		}
	}
	switch {
	case isTextType(c.ctype):
		c.kind = KindText
	case isBinaryType(c.ctype):
		c.kind = KindBinary
	case isText(c.body):
		c.kind = KindText
	default:
		c.kind = KindBinary
	}
	return c, nil
}

// decodeJSON parses c.body as JSON. When strict (the Content-Type says JSON)
// invalid JSON is an error; otherwise c.kind stays empty. A JSON body is then
// looked at for JSON-RPC, GraphQL and a Gmail-style "raw" MIME message.
func (c *content) decodeJSON(strict bool, lim Limits, hn hints) error {
	j, err := parseJSON(c.body, StageJSON)
	if err != nil {
		if strict {
			return err
		}
		return nil
	}
	c.kind, c.json = KindJSON, j
	if j.IsObject() {
		// One pass over the top-level members instead of a gjson.Get (a
		// scan of the whole body) per member that might be there.
		var has struct{ jsonrpc, query, raw, message bool }
		j.ForEach(func(k, _ gjson.Result) bool {
			switch k.Str {
			case "jsonrpc":
				has.jsonrpc = true
			case "query":
				has.query = true
			case "raw":
				has.raw = true
			case "message":
				has.message = true
			}
			return true
		})
		switch {
		case has.jsonrpc:
		case has.query && hn.request:
			return c.decodeGraphQLJSON(hn)
		case has.raw || has.message:
			return c.decodeGmailRaw(hn.gmail)
		default:
			return nil
		}
	}
	msgs, err := extractJSONRPC(j)
	if err != nil {
		return err
	}
	if len(msgs) > 0 {
		c.kind, c.jsonrpc = KindJSONRPC, msgs
		return nil
	}
	if hn.request {
		return c.decodeGraphQLJSON(hn)
	}
	return c.decodeGmailRaw(hn.gmail)
}

// decodeGraphQLJSON looks for GraphQL in a JSON request body, then for a
// Gmail-style message.
func (c *content) decodeGraphQLJSON(hn hints) error {
	ops, err := graphQLFromJSON(c.json, hn.graphql)
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		c.kind, c.graphql = KindGraphQL, ops
		return nil
	}
	return c.decodeGmailRaw(hn.gmail)
}

// decodeGmailRaw decodes the base64url MIME message of a Gmail-style body
// ({"raw": ...} for messages.send/import/insert, {"message": {"raw": ...}} for
// drafts). Off Gmail paths a "raw" field that is not a message is just data.
func (c *content) decodeGmailRaw(strict bool) error {
	if !c.json.IsObject() {
		return nil
	}
	raw := c.json.Get("raw")
	if raw.Type != gjson.String {
		raw = c.json.Get("message.raw")
	}
	if raw.Type != gjson.String {
		return nil
	}
	if !strict && (len(raw.Str) < 16 || !isBase64Text(raw.Str)) {
		return nil
	}
	m, err := DecodeBase64URLMIME(raw.Str)
	if err != nil {
		if strict {
			return err
		}
		return nil
	}
	c.mime = m
	return nil
}

// decodeNDJSON parses newline-delimited JSON: every non-blank line must be a
// JSON value.
func (c *content) decodeNDJSON() error {
	s := string(c.body)
	var lines []gjson.Result
	for n := 1; s != ""; n++ {
		var line string
		line, s, _ = strings.Cut(s, "\n")
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := checkJSON(line); err != nil {
			return decodeErr(StageNDJSON, ErrMalformed, "line %d: %w", n, err)
		}
		lines = append(lines, gjson.Parse(line))
	}
	c.kind, c.ndjson = KindNDJSON, lines
	return nil
}

// decodeGraphQLText parses an application/graphql body; operationName and
// variables come from the URL query, as GraphQL-over-HTTP servers take them.
func (c *content) decodeGraphQLText(hn hints) error {
	vars, err := graphQLVariablesParam(hn.query.Get("variables"))
	if err != nil {
		return err
	}
	ops, err := ParseGraphQL(string(c.body), hn.query.Get("operationName"), vars)
	if err != nil {
		return err
	}
	c.kind, c.graphql = KindGraphQL, ops
	return nil
}

// parseContentType returns the lower-case media type and its parameters. A
// malformed parameter list keeps the media type, without parameters.
func parseContentType(v string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && mt == "" {
		mt, _, _ = strings.Cut(v, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt, params
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// toUTF8 converts b from the named charset (WHATWG encoding labels, as
// browsers resolve them) to UTF-8, bounding the output by max bytes. Errors
// are reported at stage.
func toUTF8(b []byte, charset string, max int64, stage string) ([]byte, error) {
	cs := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
	switch cs {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return b, nil
	}
	enc, err := htmlindex.Get(cs)
	if err != nil {
		return nil, decodeErr(stage, ErrUnsupportedEncoding, "charset %q", truncateForMsg(cs))
	}
	if name, _ := htmlindex.Name(enc); name == "utf-8" {
		return b, nil
	}
	out, err := io.ReadAll(io.LimitReader(transform.NewReader(bytes.NewReader(b), enc.NewDecoder()), max+1))
	if err != nil {
		return nil, decodeErr(stage, ErrMalformed, "charset %s: %w", cs, err)
	}
	if int64(len(out)) > max {
		return nil, decodeErr(stage, ErrTooLarge, "converted body exceeds %d bytes", max)
	}
	return out, nil
}

// isJSONType reports JSON media types: application/json, text/json and any
// +json structured-syntax suffix (RFC 6839).
func isJSONType(ct string) bool {
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

func isNDJSONType(ct string) bool {
	switch ct {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl",
		"application/jsonlines", "application/x-jsonlines", "application/json-lines":
		return true
	}
	return false
}

func isTextType(ct string) bool {
	switch {
	case strings.HasPrefix(ct, "text/"),
		ct == "application/xml", strings.HasSuffix(ct, "+xml"),
		ct == "application/javascript", ct == "application/ecmascript",
		ct == "application/yaml", ct == "application/x-yaml",
		ct == "application/toml", ct == "application/sql":
		return true
	}
	return false
}

// isBinaryType reports media types whose bodies are never treated as text,
// even when their bytes happen to be valid UTF-8.
func isBinaryType(ct string) bool {
	for _, p := range []string{"image/", "audio/", "video/", "font/"} {
		if strings.HasPrefix(ct, p) {
			return true
		}
	}
	switch ct {
	case "application/pdf", "application/zip", "application/gzip", "application/x-tar",
		"application/x-protobuf", "application/protobuf", "application/grpc", "application/wasm":
		return true
	}
	return false
}

// looksJSON reports whether b starts, after white space, with { or [.
func looksJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// isText reports whether b is valid UTF-8 without control characters other
// than white space (the test for "this body is text a person could read").
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7f {
			return false
		}
	}
	return true
}

// isBase64Text reports whether s uses only base64 / base64url characters
// (and line breaks, which some encoders insert).
func isBase64Text(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '+', c == '/', c == '=', c == '\r', c == '\n':
		default:
			return false
		}
	}
	return true
}

// parseQuery parses an application/x-www-form-urlencoded string (a URL query
// or a form body). Unlike url.ParseQuery it keeps ';' as data instead of
// dropping the pair, so nothing a server might read is hidden from
// inspection; a malformed %-escape is an error at stage.
func parseQuery(s string, stage string) (url.Values, error) {
	v := url.Values{}
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, decodeErr(stage, ErrMalformed, "invalid %%-escape in parameter name")
		}
		val, err = url.QueryUnescape(val)
		if err != nil {
			return nil, decodeErr(stage, ErrMalformed, "invalid %%-escape in parameter %q", truncateForMsg(k))
		}
		v[k] = append(v[k], val)
	}
	return v, nil
}
