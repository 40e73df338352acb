package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// ErrModificationFailed is wrapped when a MODIFY edit cannot be applied. The
// gate turns the decision into DENY with the error as reason: an edit that
// does not apply never lets the original request pass.
var ErrModificationFailed = errors.New("modification cannot be applied")

// ModificationError is one edit that could not be applied.
type ModificationError struct {
	Mod    aarm.Modification
	Reason string
}

// Error names the edit, its path and why it could not apply.
func (e *ModificationError) Error() string {
	p := e.Mod.Path
	if p == "" {
		p = "*"
	}
	return fmt.Sprintf("%s %s: %s", e.Mod.Kind, p, e.Reason)
}

// Unwrap makes errors.Is(err, ErrModificationFailed) true.
func (e *ModificationError) Unwrap() error { return ErrModificationFailed }

// EditRequest is the part of an outbound request a MODIFY decision may edit.
type EditRequest struct {
	URL         *url.URL
	Header      http.Header
	Body        []byte
	ContentType string
}

// Redaction is one DLP finding to replace with a typed placeholder.
type Redaction struct {
	// Location is where the finding is, as inspect reports it:
	// "body.user.email", "body" (a non-JSON body), "query.token", "header.X-Key".
	Location string
	// Value is the sensitive text.
	Value string
	// Placeholder replaces it, e.g. "[REDACTED:aws_access_key_id]".
	Placeholder string
}

// ApplyModifications applies mods in order to a copy of req and returns the
// edited request and a human-readable list of what changed. req is not
// modified. Redactions are applied by `redact` edits (all of them, or those
// whose location starts with the edit's path). Any edit that cannot apply —
// a body edit on a body that is not JSON, a Required path that is absent, a
// redaction whose value is not found where it was reported — fails the whole
// call with an error wrapping ErrModificationFailed. Content-Length is the
// caller's to set from the returned body.
func ApplyModifications(mods []aarm.Modification, req EditRequest, redactions []Redaction) (EditRequest, []string, error) {
	out := EditRequest{ContentType: req.ContentType, Body: slices.Clone(req.Body)}
	if req.URL != nil {
		u := *req.URL
		if u.User != nil {
			uu := *u.User
			u.User = &uu
		}
		out.URL = &u
	}
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	var changes []string
	for _, m := range mods {
		fail := func(format string, args ...any) (EditRequest, []string, error) {
			return req, nil, &ModificationError{Mod: m, Reason: fmt.Sprintf(format, args...)}
		}
		switch m.Kind {
		case aarm.ModSetJSON, aarm.ModDeleteJSON, aarm.ModCapJSON:
			if !gjson.ValidBytes(out.Body) || len(bytes.TrimSpace(out.Body)) == 0 {
				return fail("the body is not JSON (content type %q)", out.ContentType)
			}
			cur := gjson.GetBytes(out.Body, m.Path)
			if !cur.Exists() && m.Required {
				return fail("path is absent from the body")
			}
			switch m.Kind {
			case aarm.ModSetJSON:
				b, err := sjson.SetBytes(out.Body, m.Path, m.Value)
				if err != nil {
					return fail("%v", err)
				}
				out.Body = b
				changes = append(changes, fmt.Sprintf("body.%s: set to %s", m.Path, shortValue(m.Value)))
			case aarm.ModDeleteJSON:
				if !cur.Exists() {
					continue
				}
				b, err := sjson.DeleteBytes(out.Body, m.Path)
				if err != nil {
					return fail("%v", err)
				}
				out.Body = b
				changes = append(changes, fmt.Sprintf("body.%s: removed", m.Path))
			case aarm.ModCapJSON:
				if !cur.Exists() {
					continue
				}
				n, ok := policyNumber(m.Value)
				if !ok || n < 0 {
					return fail("cap %v is not a number", m.Value)
				}
				switch {
				case cur.IsArray():
					arr := cur.Array()
					if len(arr) <= int(n) {
						continue
					}
					var raw strings.Builder
					raw.WriteByte('[')
					for i := 0; i < int(n); i++ {
						if i > 0 {
							raw.WriteByte(',')
						}
						raw.WriteString(arr[i].Raw)
					}
					raw.WriteByte(']')
					b, err := sjson.SetRawBytes(out.Body, m.Path, []byte(raw.String()))
					if err != nil {
						return fail("%v", err)
					}
					out.Body = b
					changes = append(changes, fmt.Sprintf("body.%s: %d items capped to %d", m.Path, len(arr), int(n)))
				case cur.Type == gjson.Number:
					if cur.Float() <= n {
						continue
					}
					b, err := sjson.SetBytes(out.Body, m.Path, n)
					if err != nil {
						return fail("%v", err)
					}
					out.Body = b
					changes = append(changes, fmt.Sprintf("body.%s: %s capped to %s", m.Path, cur.Raw, strconv.FormatFloat(n, 'f', -1, 64)))
				case cur.Type == gjson.String:
					// "per_page": "500" — a numeric string is capped as a number.
					f, err := strconv.ParseFloat(cur.Str, 64)
					if err != nil {
						return fail("value %s is neither a list nor a number", cur.Raw)
					}
					if f <= n {
						continue
					}
					b, err := sjson.SetBytes(out.Body, m.Path, strconv.FormatFloat(n, 'f', -1, 64))
					if err != nil {
						return fail("%v", err)
					}
					out.Body = b
					changes = append(changes, fmt.Sprintf("body.%s: %s capped to %s", m.Path, cur.Raw, strconv.FormatFloat(n, 'f', -1, 64)))
				default:
					return fail("value %s is neither a list nor a number", shortJSON(cur))
				}
			}
		case aarm.ModSetQuery, aarm.ModDeleteQuery:
			if out.URL == nil {
				return fail("the request has no URL")
			}
			q := out.URL.Query()
			_, had := q[m.Path]
			if !had && m.Required {
				return fail("query parameter is absent")
			}
			if m.Kind == aarm.ModSetQuery {
				v, _ := policyString(m.Value)
				q.Set(m.Path, v)
				changes = append(changes, fmt.Sprintf("query.%s: set to %q", m.Path, v))
			} else {
				if !had {
					continue
				}
				q.Del(m.Path)
				changes = append(changes, fmt.Sprintf("query.%s: removed", m.Path))
			}
			out.URL.RawQuery = q.Encode()
		case aarm.ModSetHeader, aarm.ModDeleteHeader:
			had := len(out.Header.Values(m.Path)) > 0
			if !had && m.Required {
				return fail("header is absent")
			}
			if m.Kind == aarm.ModSetHeader {
				v, _ := policyString(m.Value)
				if strings.ContainsAny(v, "\r\n\x00") {
					return fail("header value contains a line break")
				}
				out.Header.Set(m.Path, v)
				changes = append(changes, fmt.Sprintf("header %s: set", http.CanonicalHeaderKey(m.Path)))
			} else {
				if !had {
					continue
				}
				out.Header.Del(m.Path)
				changes = append(changes, fmt.Sprintf("header %s: removed", http.CanonicalHeaderKey(m.Path)))
			}
		case aarm.ModRedact:
			n := 0
			for _, r := range redactions {
				if m.Path != "" && r.Location != m.Path && !strings.HasPrefix(r.Location, m.Path+".") {
					continue
				}
				c, err := applyRedaction(&out, r)
				if err != nil {
					return fail("%v", err)
				}
				changes = append(changes, c)
				n++
			}
			if n == 0 && m.Required {
				return fail("no finding to redact")
			}
		default:
			return fail("unknown edit")
		}
	}
	return out, changes, nil
}

func placeholderOf(r Redaction) string {
	if r.Placeholder != "" {
		return r.Placeholder
	}
	return "[REDACTED]"
}

// applyRedaction replaces one finding at its location.
func applyRedaction(req *EditRequest, r Redaction) (string, error) {
	if r.Value == "" {
		return "", fmt.Errorf("finding at %s has no value", r.Location)
	}
	ph := placeholderOf(r)
	// "body.note|base64" names the field and the decoding that revealed the
	// value; the value is then not literally there, and the edit fails below.
	loc, _, _ := strings.Cut(r.Location, "|")
	where, rest, _ := strings.Cut(loc, ".")
	switch where {
	case "form", "graphql", "jsonrpc", "file":
		// Fields decoded from the body: replace the value in the raw body.
		rest = ""
		fallthrough
	case "body":
		if rest != "" && gjson.ValidBytes(req.Body) {
			cur := gjson.GetBytes(req.Body, rest)
			if !cur.Exists() || cur.Type != gjson.String || !strings.Contains(cur.Str, r.Value) {
				return "", fmt.Errorf("finding not found at %s", r.Location)
			}
			b, err := sjson.SetBytes(req.Body, rest, strings.ReplaceAll(cur.Str, r.Value, ph))
			if err != nil {
				return "", err
			}
			req.Body = b
			return fmt.Sprintf("%s: redacted as %s", r.Location, ph), nil
		}
		// Not a JSON leaf (text, form, multipart, NDJSON, GraphQL and
		// JSON-RPC members): replace every occurrence, in the raw, the
		// URL-encoded and the JSON-escaped spelling.
		found := false
		jsonSpelling, _ := json.Marshal(r.Value)
		for _, v := range []string{r.Value, url.QueryEscape(r.Value), strings.Trim(string(jsonSpelling), `"`)} {
			if bytes.Contains(req.Body, []byte(v)) {
				req.Body = bytes.ReplaceAll(req.Body, []byte(v), []byte(ph))
				found = true
			}
		}
		if !found {
			return "", fmt.Errorf("finding not found at %s", r.Location)
		}
		return fmt.Sprintf("%s: redacted as %s", r.Location, ph), nil
	case "query":
		if req.URL == nil {
			return "", fmt.Errorf("finding not found at %s", r.Location)
		}
		q := req.URL.Query()
		vals, ok := q[rest]
		found := false
		for i, v := range vals {
			if strings.Contains(v, r.Value) {
				vals[i] = strings.ReplaceAll(v, r.Value, ph)
				found = true
			}
		}
		if !ok || !found {
			return "", fmt.Errorf("finding not found at %s", r.Location)
		}
		req.URL.RawQuery = q.Encode()
		return fmt.Sprintf("%s: redacted as %s", r.Location, ph), nil
	case "url":
		if req.URL == nil || rest != "path" || !strings.Contains(req.URL.Path, r.Value) {
			return "", fmt.Errorf("finding not found at %s", r.Location)
		}
		req.URL.Path = strings.ReplaceAll(req.URL.Path, r.Value, ph)
		req.URL.RawPath = ""
		return fmt.Sprintf("%s: redacted as %s", r.Location, ph), nil
	case "header":
		vals := req.Header.Values(rest)
		found := false
		nv := make([]string, len(vals))
		for i, v := range vals {
			nv[i] = v
			if strings.Contains(v, r.Value) {
				nv[i] = strings.ReplaceAll(v, r.Value, ph)
				found = true
			}
		}
		if !found {
			return "", fmt.Errorf("finding not found at %s", r.Location)
		}
		req.Header[http.CanonicalHeaderKey(rest)] = nv
		return fmt.Sprintf("%s: redacted as %s", r.Location, ph), nil
	}
	return "", fmt.Errorf("unknown location %q", r.Location)
}

func shortJSON(r gjson.Result) string {
	if !r.Exists() {
		return "(absent)"
	}
	return truncateForChange(r.Raw)
}

func shortValue(v any) string {
	s, ok := policyString(v)
	if ok {
		if _, isStr := v.(string); isStr {
			s = strconv.Quote(s)
		}
		return truncateForChange(s)
	}
	return truncateForChange(fmt.Sprint(v))
}

func truncateForChange(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
