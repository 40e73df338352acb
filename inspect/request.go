package inspect

import (
	"net/http"
	"net/url"

	"github.com/tidwall/gjson"
)

// BodyKind says how a body was understood.
type BodyKind string

// The body kinds Decode distinguishes.
const (
	KindEmpty     BodyKind = "empty"
	KindJSON      BodyKind = "json"
	KindNDJSON    BodyKind = "ndjson"
	KindForm      BodyKind = "form"
	KindMultipart BodyKind = "multipart"
	KindGraphQL   BodyKind = "graphql"
	KindJSONRPC   BodyKind = "jsonrpc"
	KindText      BodyKind = "text"
	KindBinary    BodyKind = "binary"
)

// Limits bound the work decoding may do on agent-supplied bytes.
type Limits struct {
	// MaxBody is the largest decoded body, in bytes, that is inspected.
	MaxBody int64
	// MaxRatio is the largest allowed decoded/encoded size ratio for
	// content-encoded bodies (a zip bomb is refused, not expanded).
	MaxRatio int64
}

// Request is an outbound HTTP request decoded for mediation. It is produced by
// DecodeRequest and only read afterwards.
type Request struct {
	Method string
	// URL is absolute (scheme, host, port as sent, path, raw query).
	URL    *url.URL
	Header http.Header
	// Query is URL.Query(), parsed once.
	Query url.Values
	// ContentType is the media type without parameters, lower case.
	ContentType string
	// Body is the body after content-encoding removal and charset
	// conversion to UTF-8.
	Body []byte
	Kind BodyKind

	// JSON is the parsed JSON body (KindJSON, KindGraphQL, KindJSONRPC).
	JSON gjson.Result
	// NDJSON holds one result per line for KindNDJSON.
	NDJSON []gjson.Result
	// Form holds url-encoded form fields and multipart text fields.
	Form url.Values
	// Files holds multipart file parts.
	Files []File
	// GraphQL holds the operations of a GraphQL request (JSON, batched JSON
	// or GET query).
	GraphQL []GraphQLOperation
	// JSONRPC holds the messages of a JSON-RPC 2.0 request (single or batch).
	JSONRPC []JSONRPCMessage
}

// File is one multipart file part, described without keeping its bytes twice.
type File struct {
	Field       string `json:"field"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	// Text is the part's content when it is text (for DLP and taint).
	Text string `json:"-"`
}

// GraphQLOperation is one operation of a GraphQL request.
type GraphQLOperation struct {
	// Type is "query", "mutation" or "subscription".
	Type string `json:"type"`
	// Name is the operation name, or the first root field when unnamed.
	Name string `json:"name"`
	// Fields are the root selection fields (e.g. "issueCreate").
	Fields    []string     `json:"fields,omitempty"`
	Variables gjson.Result `json:"-"`
	Query     string       `json:"-"`
}

// JSONRPCMessage is one JSON-RPC 2.0 request or notification.
type JSONRPCMessage struct {
	ID     string       `json:"id,omitempty"`
	Method string       `json:"method"`
	Params gjson.Result `json:"-"`
}

// MIMEMessage is an RFC 5322 message (as carried base64url-encoded in Gmail's
// "raw" field), with encoded-word headers decoded.
type MIMEMessage struct {
	From    string   `json:"from,omitempty"`
	To      []string `json:"to,omitempty"`
	Cc      []string `json:"cc,omitempty"`
	Bcc     []string `json:"bcc,omitempty"`
	Subject string   `json:"subject,omitempty"`
	// Text is the text/plain body (or text/html stripped of tags).
	Text        string `json:"text,omitempty"`
	Attachments []File `json:"attachments,omitempty"`
}

// Field is one string value of a request or response, with where it was found,
// for DLP scanning, entity extraction and fingerprinting.
type Field struct {
	// Location names the place: "url.path", "query.q", "header.X-Api-Key",
	// "body.messages.0.content" (gjson path after "body."), "form.comment",
	// "file.upload", "mime.text", "mime.subject".
	Location string
	Value    string
}
