// Package aarm holds the vocabulary of the AARM specification (Autonomous Action
// Runtime Management, arXiv 2602.09433) as Go types: Action, Identity, Decision,
// Verdict, Classification and Receipt. Their JSON shapes are the AARM schemas
// described in DESIGN.md §6. The package has no behaviour beyond encoding and
// depends on the standard library only.
package aarm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Verdict is one of the five AARM decisions (R4).
//
// The zero value is Deny: anything that fails to decide may not allow
// (DESIGN.md §2, STYLE.md "Deny is the zero value").
type Verdict uint8

// The five verdicts. Deny must stay first so that it is the zero value.
const (
	Deny Verdict = iota
	Allow
	Modify
	StepUp
	Defer
)

var verdictNames = [...]string{Deny: "DENY", Allow: "ALLOW", Modify: "MODIFY", StepUp: "STEP_UP", Defer: "DEFER"}

// String returns the AARM spelling: DENY, ALLOW, MODIFY, STEP_UP or DEFER.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// ParseVerdict accepts the AARM spelling in any case ("step_up", "STEP_UP", "step-up").
func ParseVerdict(s string) (Verdict, error) {
	norm := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	for i, n := range verdictNames {
		if n == norm {
			return Verdict(i), nil
		}
	}
	return Deny, fmt.Errorf("unknown verdict %q (want one of ALLOW, DENY, MODIFY, STEP_UP, DEFER)", s)
}

// Forwards reports whether the verdict lets the request leave the proxy as it is
// decided (ALLOW or MODIFY). STEP_UP and DEFER forward only after resolution.
func (v Verdict) Forwards() bool { return v == Allow || v == Modify }

// MarshalText implements encoding.TextMarshaler.
func (v Verdict) MarshalText() ([]byte, error) {
	if int(v) >= len(verdictNames) {
		return nil, fmt.Errorf("invalid verdict %d", uint8(v))
	}
	return []byte(v.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verdict) UnmarshalText(b []byte) error {
	p, err := ParseVerdict(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// Classification explains a decision in the four AARM classes (R3). The empty
// value means a static outcome: the rule decided on the action alone.
type Classification string

// The AARM decision classifications.
const (
	ClassStatic                Classification = ""
	ClassForbidden             Classification = "forbidden"
	ClassContextDependentDeny  Classification = "context_dependent_deny"
	ClassContextDependentAllow Classification = "context_dependent_allow"
	ClassContextDependentDefer Classification = "context_dependent_defer"
)

// Effect is what an action does to the world, coarse enough for policy.
type Effect string

// The effects an action can have (DESIGN.md §6).
const (
	EffectRead    Effect = "read"
	EffectWrite   Effect = "write"
	EffectDelete  Effect = "delete"
	EffectSend    Effect = "send"
	EffectExecute Effect = "execute"
	EffectSpend   Effect = "spend"
	EffectAdmin   Effect = "admin"
)

// Effects lists every valid effect, in order of increasing consequence.
var Effects = []Effect{EffectRead, EffectWrite, EffectSend, EffectExecute, EffectDelete, EffectSpend, EffectAdmin}

// Valid reports whether e is one of the known effects.
func (e Effect) Valid() bool {
	for _, k := range Effects {
		if e == k {
			return true
		}
	}
	return false
}

// RiskLevel grades a decision for reviewers and for sorting held actions.
type RiskLevel string

// Risk levels, lowest first.
const (
	RiskLow      RiskLevel = "low"
	RiskMedium   RiskLevel = "medium"
	RiskHigh     RiskLevel = "high"
	RiskCritical RiskLevel = "critical"
)

// Identity is who stands behind an action (AARM R6): the human principal, the
// service, the agent instance, the session and the privilege scope at the time
// of the action. It is captured when the request arrives and travels with it
// unchanged through holds.
type Identity struct {
	Human   string   `json:"human,omitempty"`
	Service string   `json:"service,omitempty"`
	Agent   string   `json:"agent,omitempty"`
	Session string   `json:"session,omitempty"`
	Scope   []string `json:"scope,omitempty"`
	// Delegation is the chain from the human to the acting agent, outermost
	// first, e.g. ["user:alice", "service:ci", "agent:triage-bot"].
	Delegation []string `json:"delegation,omitempty"`
	// Verified is true when the identity came from a valid session token.
	Verified bool `json:"verified"`
	// ExpiresAt is when the session's token stops being valid.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Destination is where an action's request is sent.
type Destination struct {
	Host     string `json:"host"`
	Port     string `json:"port,omitempty"`
	Scheme   string `json:"scheme,omitempty"`
	External bool   `json:"external"`
}

// EntityKind says what an extracted entity is.
type EntityKind string

// Entity kinds used by rule packs and provenance tracking.
const (
	EntityRecipient EntityKind = "recipient"
	EntityEmail     EntityKind = "email"
	EntityDomain    EntityKind = "domain"
	EntityURL       EntityKind = "url"
	EntityAccount   EntityKind = "account"
	EntityAmount    EntityKind = "amount"
	EntityRepo      EntityKind = "repository"
	EntityChannel   EntityKind = "channel"
	EntityUser      EntityKind = "user"
)

// Entity is a value of consequence named by an action: who receives it, where
// it goes, which account pays.
type Entity struct {
	Kind  EntityKind `json:"kind"`
	Value string     `json:"value"`
	// Param is the parameter the entity was taken from.
	Param string `json:"param,omitempty"`
}

// Action is one outbound request, normalised to the AARM action schema.
type Action struct {
	ID          string         `json:"action_id"`
	Timestamp   time.Time      `json:"timestamp"`
	Tool        string         `json:"tool"`
	Operation   string         `json:"operation"`
	Effect      Effect         `json:"effect"`
	Target      string         `json:"target,omitempty"`
	Destination Destination    `json:"destination"`
	Method      string         `json:"method"`
	Path        string         `json:"path"`
	Parameters  map[string]any `json:"parameters,omitempty"`
	Entities    []Entity       `json:"entities,omitempty"`
	Identity    Identity       `json:"identity"`
	// RiskSignals are the context checks' findings at decision time
	// (signals.dlp, signals.taint, signals.alignment, ...).
	RiskSignals map[string]any `json:"risk_signals,omitempty"`
	// ContentDigest is "sha256:<hex>" of the request body as inspected.
	ContentDigest string `json:"content_digest,omitempty"`
	// Mapping names the rule-pack entry that produced Tool/Operation
	// ("github/issues.create", "fallback/http.post").
	Mapping string `json:"mapping,omitempty"`
}

// PolicyRef identifies the exact policy a decision came from.
type PolicyRef struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// ModificationKind names a MODIFY edit.
type ModificationKind string

// The MODIFY edits the proxy knows how to apply.
const (
	ModSetJSON      ModificationKind = "body.set"
	ModDeleteJSON   ModificationKind = "body.delete"
	ModCapJSON      ModificationKind = "body.cap"
	ModSetQuery     ModificationKind = "query.set"
	ModDeleteQuery  ModificationKind = "query.delete"
	ModSetHeader    ModificationKind = "header.set"
	ModDeleteHeader ModificationKind = "header.delete"
	ModRedact       ModificationKind = "redact"
)

// Modification is one edit a MODIFY decision makes to a request before it is
// forwarded. Path is a gjson/sjson path for body edits, a name for query and
// header edits; Value is the new value (or the cap for body.cap).
type Modification struct {
	Kind     ModificationKind `json:"kind"`
	Path     string           `json:"path,omitempty"`
	Value    any              `json:"value,omitempty"`
	Required bool             `json:"required,omitempty"`
}

// Decision is the policy decision point's answer for one action.
//
// The zero value is a DENY with no reason; callers that construct decisions on
// error paths should still say why.
type Decision struct {
	Verdict        Verdict        `json:"verdict"`
	Classification Classification `json:"classification,omitempty"`
	Rule           string         `json:"rule,omitempty"`
	Reason         string         `json:"reason"`
	RiskLevel      RiskLevel      `json:"risk_level,omitempty"`
	Confidence     float64        `json:"confidence"`
	// Alignment is the intent-alignment score the decision used, when any.
	Alignment     *float64       `json:"alignment,omitempty"`
	Modifications []Modification `json:"modifications,omitempty"`
	Approvers     []string       `json:"approvers,omitempty"`
	Timeout       Duration       `json:"timeout,omitzero"`
	TimeoutAction Verdict        `json:"timeout_action"`
	Policy        PolicyRef      `json:"policy"`
}

// Duration is a time.Duration that encodes as a Go duration string ("30s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	p, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(p)
	return nil
}

// IsZero reports whether d is zero (for omitzero).
func (d Duration) IsZero() bool { return d == 0 }

// ReceiptKind says which moment of an action's life a receipt records.
type ReceiptKind string

// Receipt kinds (issue 5).
const (
	KindDecision   ReceiptKind = "decision"
	KindOutcome    ReceiptKind = "outcome"
	KindApproval   ReceiptKind = "approval"
	KindDeferral   ReceiptKind = "deferral"
	KindResolution ReceiptKind = "resolution"
)

// ReceiptVersion is the schema version written into every receipt.
const ReceiptVersion = "aarm.receipt/v1"

// ReceiptAction is the action as recorded in a receipt: sensitive parameter
// values are replaced by "sha256:<hex>" of their JSON encoding.
type ReceiptAction struct {
	ID            string         `json:"action_id"`
	Tool          string         `json:"tool"`
	Operation     string         `json:"operation"`
	Effect        Effect         `json:"effect"`
	Target        string         `json:"target,omitempty"`
	Destination   Destination    `json:"destination"`
	Method        string         `json:"method"`
	Path          string         `json:"path"`
	Parameters    map[string]any `json:"parameters,omitempty"`
	ContentDigest string         `json:"content_digest,omitempty"`
	Timestamp     time.Time      `json:"timestamp"`
}

// ReceiptDecision is the decision as recorded in a receipt.
type ReceiptDecision struct {
	Verdict        Verdict        `json:"verdict"`
	Classification Classification `json:"classification,omitempty"`
	Rule           string         `json:"rule,omitempty"`
	Reason         string         `json:"reason"`
	RiskLevel      RiskLevel      `json:"risk_level,omitempty"`
	Confidence     float64        `json:"confidence"`
	Alignment      *float64       `json:"alignment,omitempty"`
	Modifications  []Modification `json:"modifications,omitempty"`
	Policy         PolicyRef      `json:"policy"`
}

// Approval records a person's decision on a held action.
type Approval struct {
	Approver string    `json:"approver"`
	Decision Verdict   `json:"decision"`
	Time     time.Time `json:"time"`
	Reason   string    `json:"reason,omitempty"`
}

// Deferral records why an action was deferred and how the deferral ended.
type Deferral struct {
	Reason           string    `json:"reason"`
	ResolutionMethod string    `json:"resolution_method,omitempty"`
	Time             time.Time `json:"time"`
}

// Execution records what happened when the action was (or was not) forwarded.
type Execution struct {
	// Status is "forwarded", "blocked", "error" or "unknown".
	Status         string    `json:"status"`
	StatusCode     int       `json:"status_code,omitempty"`
	StartedAt      time.Time `json:"started_at,omitzero"`
	DurationMS     int64     `json:"duration_ms,omitempty"`
	ResponseDigest string    `json:"response_digest,omitempty"`
	Error          string    `json:"error,omitempty"`
}

// LedgerPosition places a receipt in the append-only log. It is set by the
// ledger, never by callers.
type LedgerPosition struct {
	Index    uint64 `json:"index"`
	PrevHash string `json:"prev_hash"`
}

// Signature is the receipt signer's signature over the receipt's canonical
// (RFC 8785) bytes with the signature field removed.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Value     string `json:"value"`
}

// Receipt is the signed record of one moment of an action (AARM R5).
type Receipt struct {
	ID          string           `json:"receipt_id"`
	Version     string           `json:"version"`
	Kind        ReceiptKind      `json:"kind"`
	Time        time.Time        `json:"time"`
	Action      ReceiptAction    `json:"action"`
	Requester   Identity         `json:"requester"`
	Decision    *ReceiptDecision `json:"decision,omitempty"`
	ContextHash string           `json:"context_hash,omitempty"`
	Approval    *Approval        `json:"approval,omitempty"`
	Deferral    *Deferral        `json:"deferral,omitempty"`
	Execution   *Execution       `json:"execution,omitempty"`
	// Ledger and Signature are filled by the ledger on append.
	Ledger    LedgerPosition `json:"ledger"`
	Signature *Signature     `json:"signature,omitempty"`
}

// RecordDecision returns the receipt form of d.
func RecordDecision(d Decision) *ReceiptDecision {
	return &ReceiptDecision{
		Verdict: d.Verdict, Classification: d.Classification, Rule: d.Rule, Reason: d.Reason,
		RiskLevel: d.RiskLevel, Confidence: d.Confidence, Alignment: d.Alignment,
		Modifications: d.Modifications, Policy: d.Policy,
	}
}

// RecordAction returns the receipt form of a, with the values of the named
// sensitive parameters replaced by their SHA-256 digest.
func RecordAction(a Action, sensitive func(param string) bool) ReceiptAction {
	ra := ReceiptAction{
		ID: a.ID, Tool: a.Tool, Operation: a.Operation, Effect: a.Effect, Target: a.Target,
		Destination: a.Destination, Method: a.Method, Path: a.Path,
		ContentDigest: a.ContentDigest, Timestamp: a.Timestamp,
	}
	if len(a.Parameters) > 0 {
		ra.Parameters = make(map[string]any, len(a.Parameters))
		for k, v := range a.Parameters {
			if sensitive != nil && sensitive(k) {
				b, _ := json.Marshal(v)
				sum := sha256.Sum256(b)
				ra.Parameters[k] = "sha256:" + hex.EncodeToString(sum[:])
				continue
			}
			ra.Parameters[k] = v
		}
	}
	return ra
}
