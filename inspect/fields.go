package inspect

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Fields returns every string value of the request worth scanning, in a
// deterministic order, each with its Location:
//
//	url.host, url.path
//	query.<name>                       one field per value
//	header.<Canonical-Name>            one per value; all headers except
//	                                   Proxy-Authorization (the session token),
//	                                   so Authorization and cookies are there —
//	                                   consumers decide what to skip
//	body.<gjson path>                  JSON string leaves, and numbers as text;
//	                                   path components escaped with gjson.Escape
//	body.<line>.<gjson path>           NDJSON (line = index among non-blank lines)
//	body                               a text body
//	form.<name>                        url-encoded and multipart text fields
//	                                   (multipart/related parts are "form.part.<i>")
//	file.<field>, file.<field>.filename  multipart text file content, file names
//	graphql.<i>.query                  GraphQL operation i: the document text,
//	graphql.<i>.variables.<path>       and variables leaves
//	jsonrpc.<i>.params.<path>          JSON-RPC message i: params leaves
//	                                   (.result.<path>, .error.<path> for responses)
//	mime.from, mime.to, mime.cc, mime.bcc, mime.subject, mime.text,
//	mime.html, mime.attachment.<i>, mime.attachment.<i>.filename
//	                                   a carried e-mail message (Gmail "raw",
//	                                   message/rfc822 bodies and parts)
//
// Body members that GraphQL or JSON-RPC fields already cover (query and
// variables; params, result and error) are not repeated under body.
// Booleans and nulls are not fields.
func (r *Request) Fields() []Field {
	var fl fieldList
	if r.URL != nil {
		fl.add("url.host", r.URL.Hostname())
		fl.add("url.path", r.URL.Path)
	}
	fl.values("query.", r.Query)
	fl.headers(r.Header)
	switch r.Kind {
	case KindGraphQL:
		fl.walkJSON("body", r.JSON, 0, "query", "variables")
		for i, op := range r.GraphQL {
			p := "graphql." + strconv.Itoa(i)
			fl.add(p+".query", op.Query)
			fl.walkJSON(p+".variables", op.Variables, -1)
		}
	case KindJSONRPC:
		fl.walkJSON("body", r.JSON, 0, "params", "result", "error")
		fl.jsonrpc(r.JSONRPC)
	default:
		fl.body(r.Kind, r.Body, r.JSON, r.NDJSON)
	}
	fl.values("form.", r.Form)
	fl.files(r.Files)
	fl.mime(r.MIME)
	return fl.fs
}

// Fields returns every string value of the response worth scanning, as
// Request.Fields does: header.<name>, body.<gjson path>, body.<line>.<path>,
// body (text), form.<name>, file.<field>, mime.*, and for event streams
// sse.<i>.data (text data) or sse.<i>.data.<gjson path> (JSON data).
func (r *Response) Fields() []Field {
	var fl fieldList
	fl.headers(r.Header)
	fl.body(r.Kind, r.Body, r.JSON, r.NDJSON)
	for i, ev := range r.Events {
		p := "sse." + strconv.Itoa(i) + ".data"
		if ev.JSON.Exists() {
			fl.walkJSON(p, ev.JSON, -1)
		} else {
			fl.add(p, ev.Data)
		}
	}
	fl.values("form.", r.Form)
	fl.files(r.Files)
	fl.mime(r.MIME)
	return fl.fs
}

// Text returns the values of the request's fields, headers excepted, joined
// by newlines and cut to at most MaxText bytes, for fingerprinting. Headers
// are left out: they are client metadata rather than content, they repeat
// on every call to an API (so fingerprints over them would match everything)
// and they carry credentials.
func (r *Request) Text() string { return joinText(r.Fields()) }

// Text returns the values of the response's fields, headers excepted, joined
// by newlines and cut to at most MaxText bytes (see Request.Text).
func (r *Response) Text() string { return joinText(r.Fields()) }

func joinText(fs []Field) string {
	var sb strings.Builder
	for _, f := range fs {
		if strings.HasPrefix(f.Location, "header.") || f.Value == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(f.Value)
		if sb.Len() >= MaxText {
			break
		}
	}
	return truncateUTF8(sb.String(), MaxText)
}

type fieldList struct{ fs []Field }

func (fl *fieldList) add(loc, v string) {
	if v != "" {
		fl.fs = append(fl.fs, Field{Location: loc, Value: v})
	}
}

// values adds one field per value, keys sorted.
func (fl *fieldList) values(prefix string, v url.Values) {
	for _, k := range slices.Sorted(maps.Keys(v)) {
		for _, x := range v[k] {
			fl.add(prefix+k, x)
		}
	}
}

func (fl *fieldList) headers(h http.Header) {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if http.CanonicalHeaderKey(k) == "Proxy-Authorization" {
			continue
		}
		for _, x := range h[k] {
			fl.add("header."+k, x)
		}
	}
}

func (fl *fieldList) body(kind BodyKind, body []byte, j gjson.Result, nd []gjson.Result) {
	switch kind {
	case KindJSON, KindJSONRPC, KindGraphQL:
		fl.walkJSON("body", j, -1)
	case KindNDJSON:
		for i, line := range nd {
			fl.walkJSON("body."+strconv.Itoa(i), line, -1)
		}
	case KindText:
		fl.add("body", string(body))
	}
}

func (fl *fieldList) jsonrpc(msgs []JSONRPCMessage) {
	for i, m := range msgs {
		p := "jsonrpc." + strconv.Itoa(i)
		fl.walkJSON(p+".params", m.Params, -1)
		fl.walkJSON(p+".result", m.Result, -1)
		fl.walkJSON(p+".error", m.Error, -1)
	}
}

func (fl *fieldList) files(files []File) {
	for _, f := range files {
		fl.add("file."+f.Field, f.Text)
		fl.add("file."+f.Field+".filename", f.Filename)
	}
}

func (fl *fieldList) mime(m *MIMEMessage) {
	if m == nil {
		return
	}
	fl.add("mime.from", m.From)
	for _, a := range m.To {
		fl.add("mime.to", a)
	}
	for _, a := range m.Cc {
		fl.add("mime.cc", a)
	}
	for _, a := range m.Bcc {
		fl.add("mime.bcc", a)
	}
	fl.add("mime.subject", m.Subject)
	fl.add("mime.text", m.Text)
	if m.HTML != m.Text {
		fl.add("mime.html", m.HTML)
	}
	for i, a := range m.Attachments {
		p := "mime.attachment." + strconv.Itoa(i)
		fl.add(p, a.Text)
		fl.add(p+".filename", a.Filename)
	}
}

// walkJSON adds the string and number leaves under v. Members named in skip
// are left out of the objects found at depth skipAt (0 for a root object, 1
// for the elements of a root batch array); when skipAt is 0 and v is an
// array, the skip applies to its elements instead. -1 skips nothing.
func (fl *fieldList) walkJSON(loc string, v gjson.Result, skipAt int, skip ...string) {
	if skipAt == 0 && v.IsArray() {
		skipAt = 1
	}
	fl.walk(loc, v, 0, skipAt, skip)
}

func (fl *fieldList) walk(loc string, v gjson.Result, depth, skipAt int, skip []string) {
	switch v.Type {
	case gjson.String:
		fl.add(loc, v.Str)
	case gjson.Number:
		fl.add(loc, v.Raw)
	case gjson.JSON:
		isObj := v.IsObject()
		i := 0
		v.ForEach(func(k, e gjson.Result) bool {
			var comp string
			if isObj {
				if depth == skipAt && slices.Contains(skip, k.Str) {
					return true
				}
				comp = gjson.Escape(k.Str)
			} else {
				comp = strconv.Itoa(i)
				i++
			}
			fl.walk(loc+"."+comp, e, depth+1, skipAt, skip)
			return true
		})
	}
}
