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
	// KindMIME is an RFC 5322 message sent as the body (message/rfc822,
	// as Gmail's media upload endpoint takes it).
	KindMIME BodyKind = "mime"
	// KindSSE is a text/event-stream response (MCP streamable HTTP, LLM
	// streaming); see Response.Events.
	KindSSE BodyKind = "sse"
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
	// Query is the URL query, parsed once. Unlike URL.Query() it keeps ';'
	// inside values rather than dropping the pair, and DecodeRequest refuses
	// a malformed %-escape instead of skipping it.
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
	// MIME is the decoded message when the body carries one: a Gmail-style
	// JSON body with a base64url "raw" (or "message.raw") field, a
	// message/rfc822 body, or a message/rfc822 multipart part.
	MIME *MIMEMessage
}

// Response is an upstream HTTP response decoded the same way as a Request, so
// that later stages can classify and fingerprint what the agent read. It is
// produced by DecodeResponse and only read afterwards.
type Response struct {
	StatusCode int
	Header     http.Header
	// ContentType is the media type without parameters, lower case.
	ContentType string
	// Body is the body after content-encoding removal and charset
	// conversion to UTF-8.
	Body []byte
	Kind BodyKind

	// JSON is the parsed JSON body (KindJSON, KindJSONRPC).
	JSON gjson.Result
	// NDJSON holds one result per line for KindNDJSON.
	NDJSON []gjson.Result
	// Events holds the events of a text/event-stream body (KindSSE).
	Events []SSEEvent
	// JSONRPC holds the JSON-RPC 2.0 messages found in the body or in the
	// data of SSE events (MCP results).
	JSONRPC []JSONRPCMessage
	// Form holds url-encoded form fields and multipart text fields.
	Form url.Values
	// Files holds multipart file parts.
	Files []File
	// MIME is the decoded message when the body carries one (see Request.MIME).
	MIME *MIMEMessage
}

// SSEEvent is one dispatched event of a text/event-stream body.
type SSEEvent struct {
	// Event is the event type ("message" when the stream named none).
	Event string
	// ID is the last event ID in effect when the event was dispatched.
	ID string
	// Data is the concatenation of the event's data lines, joined by "\n".
	Data string
	// JSON is Data parsed, when Data is valid JSON; otherwise it does not
	// exist (JSON.Exists() is false).
	JSON gjson.Result
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
//
// A message without Method is a response (a client answering a
// server-initiated request, or a server's reply); its Result or Error is set.
type JSONRPCMessage struct {
	// ID is the id as text: a string id unquoted, a number id as written,
	// "" for notifications (no id) and for a null id.
	ID     string       `json:"id,omitempty"`
	Method string       `json:"method"`
	Params gjson.Result `json:"-"`
	// Notification is true for a request without an id.
	Notification bool `json:"notification,omitempty"`
	// Result and Error are set on responses.
	Result gjson.Result `json:"-"`
	Error  gjson.Result `json:"-"`
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
	Text string `json:"text,omitempty"`
	// HTML is the text of the text/html body parts stripped of tags, kept
	// even when a text/plain alternative exists: the two alternatives need
	// not say the same thing, and both leave with the message.
	HTML        string `json:"-"`
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
