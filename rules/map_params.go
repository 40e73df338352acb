package rules

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/tidwall/gjson"
)

// extractParam reads one parameter. ok is false when the value is absent;
// an error means the request has the shape the rule expects but content that
// cannot be read as the rule says (the gate denies it).
func (ms *mapState) extractParam(p paramSource, cand *candidate, u shapeUnit) (any, bool, error) {
	switch p.source {
	case "path":
		v, ok := cand.caps[p.arg]
		return v, ok, nil
	case "host":
		v, ok := cand.hostCaps[p.arg]
		return v, ok, nil
	case "query":
		vs, ok := ms.query[p.arg]
		if !ok {
			return nil, false, nil
		}
		return stringsValue(vs), true, nil
	case "header":
		vs, ok := ms.req.Header[p.arg]
		if !ok || len(vs) == 0 {
			return nil, false, nil
		}
		return vs[0], true, nil
	case "body":
		return ms.bodyValue(p.arg)
	case "graphql.variables":
		if u.gql == nil {
			return nil, false, nil
		}
		return gjsonValue(u.gql.Variables, p.arg)
	case "graphql.name":
		if u.gql == nil || u.gql.Name == "" {
			return nil, false, nil
		}
		return u.gql.Name, true, nil
	case "graphql.field":
		if u.gql == nil || u.field == "" {
			return nil, false, nil
		}
		return u.field, true, nil
	case "graphql.type":
		if u.gql == nil {
			return nil, false, nil
		}
		return u.gql.Type, true, nil
	case "jsonrpc.params":
		if u.rpc == nil {
			return nil, false, nil
		}
		return gjsonValue(u.rpc.Params, p.arg)
	case "jsonrpc.method":
		if u.rpc == nil {
			return nil, false, nil
		}
		return u.rpc.Method, true, nil
	case "mime":
		return ms.mimeValue(p.arg)
	}
	return nil, false, fmt.Errorf("%w: unknown parameter source %q", ErrUnmappable, p.source)
}

func stringsValue(vs []string) any {
	if len(vs) == 1 {
		return vs[0]
	}
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// gjsonValue reads a gjson path ("" = the whole value) as a plain Go value.
func gjsonValue(r gjson.Result, path string) (any, bool, error) {
	if !r.Exists() {
		return nil, false, nil
	}
	v := r
	if path != "" {
		v = r.Get(path)
	}
	if !v.Exists() || v.Type == gjson.Null {
		return nil, false, nil
	}
	return v.Value(), true, nil
}

func (ms *mapState) isJSONKind() bool {
	switch ms.req.Kind {
	case inspect.KindJSON, inspect.KindGraphQL, inspect.KindJSONRPC:
		return true
	}
	return false
}

// bodyValue reads body.<path>: a gjson path into a JSON body, or a field of
// a form or multipart body. A non-empty body of any other kind cannot be
// read, which is an error: the rule needs a value the agent has hidden from
// it.
func (ms *mapState) bodyValue(path string) (any, bool, error) {
	switch {
	case ms.isJSONKind():
		return gjsonValue(ms.req.JSON, path)
	case ms.req.Kind == inspect.KindForm || ms.req.Kind == inspect.KindMultipart:
		vs, ok := ms.req.Form[path]
		if !ok {
			return nil, false, nil
		}
		return stringsValue(vs), true, nil
	case len(ms.req.Body) == 0 || ms.req.Kind == inspect.KindEmpty || ms.req.Kind == "":
		if len(ms.req.Body) == 0 {
			return nil, false, nil
		}
	}
	return nil, false, fmt.Errorf("%w: body is %s (%s), not JSON or a form", ErrUnmappable, kindName(ms.req.Kind), ms.req.ContentType)
}

func kindName(k inspect.BodyKind) string {
	if k == "" {
		return "undecoded"
	}
	return string(k)
}

// bodyText is bodyValue for predicates: the value's text (JSON text for
// numbers and booleans).
func (ms *mapState) bodyText(path string) (string, bool) {
	switch {
	case ms.isJSONKind():
		v := ms.req.JSON.Get(path)
		if !v.Exists() {
			return "", false
		}
		if v.Type == gjson.String {
			return v.Str, true
		}
		return v.Raw, true
	case ms.req.Kind == inspect.KindForm || ms.req.Kind == inspect.KindMultipart:
		vs, ok := ms.req.Form[path]
		return firstOf(vs), ok
	}
	return "", false
}

// mimeValue reads a field of the MIME message the body carries (Gmail's
// base64url "raw"). A rule that reads recipients from a message that is not
// there cannot say who receives it: that is an error, not an empty list.
func (ms *mapState) mimeValue(field string) (any, bool, error) {
	m := ms.req.MIME
	if m == nil {
		if ms.carriesMessage() {
			return nil, false, fmt.Errorf("%w: the body carries a message that did not decode (Gmail \"raw\", message/rfc822 or multipart upload)", ErrUnmappable)
		}
		return nil, false, nil
	}
	list := func(vs []string) (any, bool, error) {
		if len(vs) == 0 {
			return nil, false, nil
		}
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = v
		}
		return out, true, nil
	}
	str := func(s string) (any, bool, error) { return s, s != "", nil }
	switch field {
	case "to":
		return list(m.To)
	case "cc":
		return list(m.Cc)
	case "bcc":
		return list(m.Bcc)
	case "from":
		return str(m.From)
	case "subject":
		return str(m.Subject)
	case "text":
		return str(m.Text)
	case "attachments":
		names := make([]string, 0, len(m.Attachments))
		for _, a := range m.Attachments {
			names = append(names, a.Filename)
		}
		return list(names)
	}
	return nil, false, fmt.Errorf("%w: unknown MIME field %q", ErrUnmappable, field)
}

// valueText renders a parameter value for a target template.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case []any, []string:
		return strings.Join(valueStrings(x), ",")
	}
	return fmt.Sprint(v)
}

// valueStrings flattens a parameter value into entity candidates.
func valueStrings(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, valueStrings(e)...)
		}
		return out
	case float64, int, bool:
		return []string{valueText(x)}
	}
	return nil
}

// normalizeEntity trims a value; addresses become their lower-case
// addr-spec so that "Bob <BOB@x.com>" and "bob@x.com" are one recipient.
// Comma-separated address lists are split by the caller's list handling.
func normalizeEntity(kind aarm.EntityKind, s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	switch kind {
	case aarm.EntityRecipient, aarm.EntityEmail:
		if strings.Contains(s, "@") {
			if a, err := mail.ParseAddress(s); err == nil {
				return strings.ToLower(a.Address)
			}
			return strings.ToLower(s)
		}
	case aarm.EntityDomain:
		return normalizeHost(s)
	}
	return s
}

// splitEntityList splits comma-separated lists of addresses, users and
// channels ("a@x.com, Bob <b@y.com>", "U1,U2"); other kinds stay whole.
func splitEntityList(kind aarm.EntityKind, s string) []string {
	if !strings.Contains(s, ",") {
		return []string{s}
	}
	switch kind {
	case aarm.EntityRecipient, aarm.EntityEmail:
		if list, err := mail.ParseAddressList(s); err == nil {
			out := make([]string, len(list))
			for i, a := range list {
				out[i] = a.Address
			}
			return out
		}
		return strings.Split(s, ",")
	case aarm.EntityUser, aarm.EntityChannel:
		return strings.Split(s, ",")
	}
	return []string{s}
}

// carriesMessage reports whether the body holds an email message in a form
// the rule expects to read: a "raw"/"message.raw" JSON field, a
// message/rfc822 body or a multipart upload (Gmail's media endpoints).
func (ms *mapState) carriesMessage() bool {
	if ms.isJSONKind() {
		return ms.req.JSON.Get("raw").Exists() || ms.req.JSON.Get("message.raw").Exists()
	}
	ct := ms.req.ContentType
	return ct == "message/rfc822" || strings.HasPrefix(ct, "multipart/") || ms.req.Kind == inspect.KindMultipart
}
