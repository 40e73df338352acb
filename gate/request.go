package gate

import (
	"net/http"
	"net/url"
	"time"

	"github.com/aarmproxy/aarm"
)

// Request is one inner request handed to the gate by the proxy, after the
// proxy has authenticated the client and read the body up to its limit.
type Request struct {
	// Identity is the identity captured when the request arrived.
	Identity aarm.Identity
	Method   string
	// URL is absolute: scheme, host[:port], path and query as the client sent them.
	URL    *url.URL
	Header http.Header
	// Body is the request body exactly as received (still content-encoded),
	// complete unless Refusal says otherwise.
	Body       []byte
	RemoteAddr string
	ReceivedAt time.Time
	// Refusal, when set, is the proxy's reason why this request cannot be
	// forwarded whatever the policy says (body over the limit, host mismatch
	// inside a tunnel, private destination, WebSocket upgrade). The gate
	// records a DENY with this reason and a receipt.
	Refusal string
	// RefusalStatus is the HTTP status the proxy will answer a refusal with
	// (403 when zero, 413 for size limits).
	RefusalStatus int
	// BodyUninspected, when set, says why Body is nil although the request
	// has one: it is over limits.max_body and its host is listed in
	// limits.body_passthrough_hosts, so it is forwarded unseen. The gate
	// still decides on the rest of the request and records that the body
	// was not inspected.
	BodyUninspected string
}

// Result is the gate's answer for one request. The proxy applies it and never
// re-decides: it forwards only when Decision.Verdict.Forwards().
type Result struct {
	Decision aarm.Decision
	Action   aarm.Action
	// ReceiptID is the id of the decision receipt, durable before Result is
	// returned (empty only when the ledger could not write, in which case the
	// verdict is DENY).
	ReceiptID string
	// Status is the HTTP status for a refusal (403, 413, 503 ...).
	Status int
	// For MODIFY: the request as it must be forwarded. The proxy replaces
	// the header, body and URL with these and fixes Content-Length.
	URL    *url.URL
	Header http.Header
	Body   []byte

	// pending ties Observe to the action it reports on; set by the gate.
	pending *pending
	// recorded is the action as its decision receipt records it.
	recorded aarm.ReceiptAction
}

// Response is what came back from upstream, handed to Observe once the
// response has been fully streamed to the client (or failed).
type Response struct {
	StatusCode int
	Header     http.Header
	// Body is the bounded copy of the (decoded-as-received) response body,
	// at most limits.max_inspect_response bytes.
	Body      []byte
	Truncated bool
	// Err is the transport or copy error, if any.
	Err       error
	StartedAt time.Time
	Duration  time.Duration
}

// pending is an action whose decision receipt is written and whose outcome
// receipt is still owed.
type pending struct {
	action   aarm.Action
	recorded aarm.ReceiptAction
	decision aarm.Decision
	started  time.Time
}
