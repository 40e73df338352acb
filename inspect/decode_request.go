package inspect

import (
	"net/http"
	"net/url"
	"strings"
)

// DecodeRequest decodes an outbound request for mediation: the URL query
// (a malformed %-escape is an error; ';' is data, not a separator), then the
// body — content codings removed within lim, converted to UTF-8 from the
// Content-Type charset, and parsed by type:
//
//   - application/json, text/json, */*+json → KindJSON, refined to
//     KindJSONRPC (a "jsonrpc" member, or a batch of such) or KindGraphQL (a
//     string "query" that parses as GraphQL, or a batch of such); invalid
//     JSON is an error. A Gmail-style "raw" MIME message is decoded into
//     Request.MIME;
//   - application/x-ndjson and JSON-lines types → KindNDJSON;
//   - application/graphql → KindGraphQL (operationName and variables from the
//     URL query);
//   - application/x-www-form-urlencoded → KindForm;
//   - multipart/* → KindMultipart (fields, files);
//   - message/rfc822 → KindMIME;
//   - anything else: valid JSON is sniffed and treated as above, then text or
//     binary (KindText, KindBinary; neither is an error).
//
// An empty body whose URL carries a GraphQL "query" parameter (GraphQL over
// GET) is KindGraphQL, with variables and operationName from the URL too.
//
// Where the URL path mentions "graphql", GraphQL that does not parse is an
// error rather than plain JSON; on Gmail API paths, so is a "raw" field that
// is not a message. Every error is a *DecodeError; the gate denies on it.
//
// DecodeRequest does no I/O and keeps u and h (it does not copy them); the
// caller must not modify them afterwards. Body may alias raw when there is
// nothing to decode.
func DecodeRequest(method string, u *url.URL, h http.Header, raw []byte, lim Limits) (*Request, error) {
	if u == nil {
		u = &url.URL{}
	}
	if h == nil {
		h = http.Header{}
	}
	q, err := parseQuery(u.RawQuery, StageQuery)
	if err != nil {
		return nil, err
	}
	hn := hints{
		request: true,
		graphql: strings.Contains(strings.ToLower(u.Path), "graphql"),
		gmail:   strings.Contains(u.Path, "/gmail/"),
		query:   q,
	}
	c, err := decodeContent(h, raw, lim, hn)
	if err != nil {
		return nil, err
	}
	r := &Request{
		Method: method, URL: u, Header: h, Query: q,
		ContentType: c.ctype, Body: c.body, Kind: c.kind,
		JSON: c.json, NDJSON: c.ndjson, Form: c.form, Files: c.files,
		GraphQL: c.graphql, JSONRPC: c.jsonrpc, MIME: c.mime,
	}
	if r.Kind == KindEmpty && q.Has("query") {
		ops, err := graphQLFromQuery(q)
		switch {
		case err == nil:
			r.Kind, r.GraphQL = KindGraphQL, ops
		case hn.graphql:
			return nil, err
		}
	}
	return r, nil
}

// graphQLFromQuery parses GraphQL over GET: ?query=...&operationName=...&variables=...
func graphQLFromQuery(q url.Values) ([]GraphQLOperation, error) {
	vars, err := graphQLVariablesParam(q.Get("variables"))
	if err != nil {
		return nil, err
	}
	return ParseGraphQL(q.Get("query"), q.Get("operationName"), vars)
}

// DecodeResponse decodes an upstream response the way DecodeRequest decodes a
// request body (content codings within lim, charset, JSON, NDJSON, form,
// multipart, MIME, text, binary), plus text/event-stream (KindSSE: events,
// with each event's JSON data parsed). JSON-RPC messages in the body or in
// SSE events are collected in Response.JSONRPC. GraphQL is not looked for:
// GraphQL responses are plain JSON. Every error is a *DecodeError.
func DecodeResponse(statusCode int, h http.Header, raw []byte, lim Limits) (*Response, error) {
	if h == nil {
		h = http.Header{}
	}
	c, err := decodeContent(h, raw, lim, hints{})
	if err != nil {
		return nil, err
	}
	return &Response{
		StatusCode: statusCode, Header: h,
		ContentType: c.ctype, Body: c.body, Kind: c.kind,
		JSON: c.json, NDJSON: c.ndjson, Events: c.events, JSONRPC: c.jsonrpc,
		Form: c.form, Files: c.files, MIME: c.mime,
	}, nil
}
