package gate

import (
	"time"

	"github.com/aarmproxy/aarm"
)

// HoldSource says why an action is held.
type HoldSource string

// Hold sources: a STEP_UP waits for people, a DEFER for missing context.
const (
	HoldStepUp HoldSource = "step_up"
	HoldDefer  HoldSource = "defer"
)

// HoldState is where a hold is in its life.
type HoldState string

// Hold states. Pending is the only non-terminal state.
const (
	HoldPending  HoldState = "pending"
	HoldApproved HoldState = "approved"  // released by approvers
	HoldReleased HoldState = "released"  // a deferral resolved to ALLOW/MODIFY
	HoldDenied   HoldState = "denied"    // an approver or a re-evaluation denied
	HoldTimedOut HoldState = "timed_out" // DENY by timeout
	HoldGone     HoldState = "client_gone"
	HoldAborted  HoldState = "aborted" // session ended, token revoked, process restart
)

// Terminal reports whether the hold has ended.
func (s HoldState) Terminal() bool { return s != HoldPending }

// Hold is one STEP_UP or DEFER decision waiting on its open connection. It
// carries everything AARM says an approver must see (AARM-NOTES §4).
type Hold struct {
	ID     string     `json:"id"`
	Source HoldSource `json:"source"`
	State  HoldState  `json:"state"`
	// Action is the held action with the identity captured at submission.
	Action aarm.Action `json:"action"`
	// Decision is the decision that caused the hold (STEP_UP or DEFER).
	Decision aarm.Decision `json:"decision"`
	// Intent is the session's original request at the time of the hold.
	Intent string `json:"intent,omitempty"`
	// Context and Signals are the snapshot the decision used; ContextHash
	// is its digest as bound into the receipts.
	Context     map[string]any `json:"context,omitempty"`
	Signals     map[string]any `json:"signals,omitempty"`
	ContextHash string         `json:"context_hash,omitempty"`
	// Required is how many distinct approvers must approve (four eyes: 2).
	Required  int             `json:"required"`
	Approvals []aarm.Approval `json:"approvals,omitempty"`
	// Resolution says how the hold ended.
	Resolution string    `json:"resolution,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// ReceiptID is the receipt recording the hold itself.
	ReceiptID string `json:"receipt_id,omitempty"`
}

// Approver is the person deciding on a hold, as authenticated by the admin
// listener (dashboard login or admin token).
type Approver struct {
	Name string `json:"name"`
	// Via says how the approver authenticated: "dashboard", "token", "cli".
	Via string `json:"via"`
}

// HoldEvent is published when a hold is created or changes state.
type HoldEvent struct {
	Hold *Hold  `json:"hold"`
	Type string `json:"type"` // "created", "updated", "resolved"
}
