package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
	"github.com/aarmproxy/aarm/rules"
)

// HoldService is the gate's hold queue as the dashboard and the approvals API
// use it (issue 7). *gate.Gate satisfies it.
type HoldService interface {
	// Holds lists kept holds in state ("" = all): pending first, then by
	// risk (critical first), then oldest first.
	Holds(state gate.HoldState) []*gate.Hold
	// Hold returns one kept hold.
	Hold(id string) (*gate.Hold, bool)
	// Approve records who's approval; the hold is released once it has
	// the approvals it needs.
	Approve(ctx context.Context, id string, who gate.Approver, reason string) (*gate.Hold, error)
	// Deny denies the held action; reason is required.
	Deny(ctx context.Context, id string, who gate.Approver, reason string) (*gate.Hold, error)
	// SubscribeHolds delivers hold events until the returned function is
	// called.
	SubscribeHolds() (<-chan gate.HoldEvent, func())
}

// ReceiptSource is the receipt ledger as the receipts pages and API read it.
// *ledger.Ledger satisfies it.
type ReceiptSource interface {
	List(q ledger.Query) ([]*aarm.Receipt, error)
	Get(id string) (*aarm.Receipt, error)
	Checkpoint() (ledger.SignedCheckpoint, error)
	InclusionProof(index, treeSize uint64) ([][]byte, error)
	// Export writes a JSONL bundle of the receipts matching q.
	Export(ctx context.Context, w io.Writer, q ledger.Query) error
}

// PolicyStatus is the policy store as the policy page reads it.
// *rules.PolicyStore satisfies it.
type PolicyStatus interface {
	Status() rules.PolicyStatus
	Current() *rules.Policy
}

// ApproverAccount is a dashboard login: a person allowed to decide holds.
// PasswordHash is a bcrypt hash as HashPassword makes it.
type ApproverAccount struct {
	Name         string `json:"name" yaml:"name"`
	PasswordHash string `json:"password_hash" yaml:"password_hash"`
}

// AdminApprover is the approver name of whoever authenticates with the admin
// token (a single-user install).
const AdminApprover = "admin"

// bcryptCost is the work factor of HashPassword (about 0.2s a hash on a
// laptop; logins are rate limited as well).
const bcryptCost = 12

// maxPasswordLen is bcrypt's input limit; longer passwords are refused
// rather than silently truncated.
const maxPasswordLen = 72

// HashPassword returns the bcrypt hash of pw for an ApproverAccount.
func HashPassword(pw string) (string, error) { return hashPassword(pw, bcryptCost) }

func hashPassword(pw string, cost int) (string, error) {
	if len(pw) < 8 {
		return "", errors.New("password too short: use at least 8 characters")
	}
	if len(pw) > maxPasswordLen {
		return "", fmt.Errorf("password too long: at most %d bytes", maxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// validApproverName reports whether name can identify an approver: short,
// plain (letters, digits, . _ @ + -), and never something an agent holds
// (a session token).
func validApproverName(name string) error {
	switch {
	case name == "":
		return errors.New("approver name is empty")
	case len(name) > 64:
		return errors.New("approver name longer than 64 bytes")
	case gate.IsToken(name):
		return errors.New("approver name looks like a session token")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@+-", c)) {
			return fmt.Errorf("approver name %q: use letters, digits and . _ @ + -", name)
		}
	}
	return nil
}

func validateApprovers(accts []ApproverAccount) error {
	seen := map[string]bool{}
	for i, a := range accts {
		if err := validApproverName(a.Name); err != nil {
			return fmt.Errorf("approvers[%d]: %w", i, err)
		}
		if strings.EqualFold(a.Name, AdminApprover) {
			return fmt.Errorf("approvers[%d]: %q is reserved for the admin token", i, a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("approvers[%d]: duplicate name %q", i, a.Name)
		}
		seen[a.Name] = true
		if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil {
			return fmt.Errorf("approvers[%d] (%s): password_hash is not a bcrypt hash (make one with `aarm approvers hash`): %w", i, a.Name, err)
		}
	}
	return nil
}

// holdStates are the states the approvals API filters by.
var holdStates = []gate.HoldState{gate.HoldPending, gate.HoldApproved, gate.HoldReleased, gate.HoldDenied, gate.HoldTimedOut, gate.HoldGone, gate.HoldAborted}

func parseHoldState(s string) (gate.HoldState, error) {
	if s == "" || s == "all" {
		return "", nil
	}
	for _, st := range holdStates {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown state %q (want all, pending, approved, released, denied, timed_out, client_gone or aborted)", s)
}

// decisionStatus maps the hold queue's errors to an HTTP status (STYLE.md:
// one function maps errors to statuses).
func decisionStatus(err error) int {
	switch {
	case errors.Is(err, gate.ErrNoHold):
		return 404
	case errors.Is(err, gate.ErrReasonRequired):
		return 400
	case errors.Is(err, gate.ErrNotApprover):
		return 403
	case errors.Is(err, gate.ErrHoldResolved), errors.Is(err, gate.ErrSameApprover):
		return 409
	default:
		return 500
	}
}

// timeLeft is how long a pending hold has before its timeout.
func timeLeft(h *gate.Hold, now time.Time) time.Duration {
	if h.State.Terminal() || h.ExpiresAt.IsZero() {
		return 0
	}
	return max(h.ExpiresAt.Sub(now), 0)
}
