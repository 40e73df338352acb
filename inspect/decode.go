package inspect

import (
	"errors"
	"fmt"
)

// Default limits used when a Limits field is zero or negative.
const (
	// DefaultMaxBody is the largest decoded body inspected (8 MiB).
	DefaultMaxBody = 8 << 20
	// DefaultMaxRatio is the largest decoded/encoded size ratio accepted
	// for content-encoded bodies.
	DefaultMaxRatio = 100
	// MaxFileText is how much of a text file part (multipart upload, MIME
	// attachment) is kept in File.Text for DLP and taint.
	MaxFileText = 1 << 20
	// MaxText bounds Request.Text and Response.Text.
	MaxText = 1 << 20
	// MaxJSONDepth is the deepest JSON nesting accepted. Deeper documents are
	// refused as malformed: nobody's tool API needs them, and recursive
	// parsers (ours and upstream's) should not be handed them.
	MaxJSONDepth = 128
	// maxMIMEDepth bounds nested multiparts in MIME messages and uploads.
	maxMIMEDepth = 16
)

// Sentinel errors. Every error returned by this package's decoders is a
// *DecodeError wrapping one of them, so callers can test with errors.Is.
var (
	// ErrTooLarge: the body, or its decoded form, is larger than
	// Limits.MaxBody.
	ErrTooLarge = errors.New("body exceeds inspection limit")
	// ErrExpansion: a content-encoded body expands by more than
	// Limits.MaxRatio (a compression bomb).
	ErrExpansion = errors.New("content-encoding expansion exceeds ratio limit")
	// ErrMalformed: the bytes do not parse as what they claim to be
	// (invalid JSON under a JSON content type, truncated gzip, broken
	// multipart, GraphQL syntax error, invalid JSON-RPC, ...).
	ErrMalformed = errors.New("malformed")
	// ErrUnsupportedEncoding: a content-encoding or charset that this
	// package cannot decode, so the body cannot be inspected.
	ErrUnsupportedEncoding = errors.New("unsupported encoding")
)

// Stages named by DecodeError.Stage.
const (
	StageBody            = "body"
	StageContentEncoding = "content-encoding"
	StageCharset         = "charset"
	StageQuery           = "query"
	StageJSON            = "json"
	StageForm            = "form"
	StageMultipart       = "multipart"
	StageGraphQL         = "graphql"
	StageJSONRPC         = "jsonrpc"
	StageMIME            = "mime"
	StageNDJSON          = "ndjson"
	StageSSE             = "sse"
)

// DecodeError says which decoding stage refused the input and why. The gate
// turns it into a DENY whose reason is Error(); messages quote the agent's
// bytes at most as short, escaped fragments (a coding or charset name).
type DecodeError struct {
	// Stage is one of the Stage* constants.
	Stage string
	// Err wraps one of the sentinel errors, with detail.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Err == nil {
		return "inspect: " + e.Stage + ": decode failed"
	}
	return "inspect: " + e.Stage + ": " + e.Err.Error()
}

// Unwrap returns the wrapped error, so errors.Is(err, ErrMalformed) works.
func (e *DecodeError) Unwrap() error { return e.Err }

// decodeErr builds a *DecodeError at stage wrapping sentinel with a detail
// message (formatted with args; %w among them is allowed).
func decodeErr(stage string, sentinel error, format string, args ...any) error {
	if format == "" {
		return &DecodeError{Stage: stage, Err: sentinel}
	}
	return &DecodeError{Stage: stage, Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// withDefaults returns lim with zero or negative fields replaced by defaults.
func (lim Limits) withDefaults() Limits {
	if lim.MaxBody <= 0 {
		lim.MaxBody = DefaultMaxBody
	}
	if lim.MaxRatio <= 0 {
		lim.MaxRatio = DefaultMaxRatio
	}
	return lim
}
