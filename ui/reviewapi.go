package ui

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
)

// Receipt listing bounds for the API and the dashboard.
const (
	defaultReceiptLimit = 100
	maxReceiptLimit     = 1000
)

// ApproverHeader names the person deciding through the bearer API (the CLI
// sets it from $USER); without it the approver is AdminApprover.
const ApproverHeader = "X-AARM-Approver"

// HoldList is the answer to GET /api/v1/approvals.
type HoldList struct {
	Holds []*gate.Hold `json:"holds"`
}

// DecisionRequest is the body of POST /api/v1/approvals/{id}/approve|deny.
type DecisionRequest struct {
	Reason string `json:"reason"`
}

// DecisionError is the body of a refused approve or deny: the error and,
// when the hold exists, its current state (a second approval of a resolved
// hold answers 409 with the hold as it ended).
type DecisionError struct {
	Error string     `json:"error"`
	Hold  *gate.Hold `json:"hold,omitempty"`
}

// ReceiptList is the answer to GET /api/v1/receipts.
type ReceiptList struct {
	Receipts []*aarm.Receipt `json:"receipts"`
}

// CheckpointResponse is the answer to GET /api/v1/ledger/checkpoint: the
// latest signed checkpoint (https://c2sp.org/tlog-checkpoint). Note is the
// signed note as published; the other fields are parsed from it for
// convenience, and parsing is not verifying (use ledger.VerifyCheckpoint).
type CheckpointResponse struct {
	Origin   string `json:"origin"`
	Size     uint64 `json:"size"`
	RootHash string `json:"root_hash"` // lowercase hex
	KeyID    string `json:"key_id"`
	Note     string `json:"note"`
}

// ProofResponse is the answer to GET /api/v1/ledger/proof: the RFC 6962
// inclusion proof of the receipt at Index in the tree of TreeSize receipts.
type ProofResponse struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"tree_size"`
	Hashes   []string `json:"hashes"` // lowercase hex, leaf to root
	// Checkpoint is the signed note the proof is against when the request
	// named no size (the latest checkpoint).
	Checkpoint string `json:"checkpoint,omitempty"`
}

// mountAPI adds the approvals, receipts and ledger endpoints to the bearer
// API router (already behind requireAdmin).
func (d *dashboard) mountAPI(r chi.Router) {
	r.Get("/approvals", d.apiListHolds)
	r.Get("/approvals/{id}", d.apiGetHold)
	r.Post("/approvals/{id}/approve", d.apiDecide(true))
	r.Post("/approvals/{id}/deny", d.apiDecide(false))
	r.Get("/receipts", d.apiListReceipts)
	r.Get("/receipts/export", d.apiExportReceipts)
	r.Get("/receipts/{id}", d.apiGetReceipt)
	r.Get("/ledger/checkpoint", d.apiCheckpoint)
	r.Get("/ledger/proof", d.apiProof)
}

func (d *dashboard) apiListHolds(w http.ResponseWriter, r *http.Request) {
	if d.holds == nil {
		writeError(w, http.StatusNotImplemented, "the hold queue is not enabled")
		return
	}
	st, err := parseHoldState(r.URL.Query().Get("state"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	hs := d.holds.Holds(st)
	if hs == nil {
		hs = []*gate.Hold{}
	}
	writeJSON(w, http.StatusOK, HoldList{Holds: hs})
}

func (d *dashboard) apiGetHold(w http.ResponseWriter, r *http.Request) {
	if d.holds == nil {
		writeError(w, http.StatusNotImplemented, "the hold queue is not enabled")
		return
	}
	h, ok := d.holds.Hold(chi.URLParam(r, "id"))
	if !ok {
		writeError(w, http.StatusNotFound, gate.ErrNoHold.Error())
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// tokenApprover is the approver behind a bearer-token request.
func tokenApprover(r *http.Request) (gate.Approver, error) {
	name := strings.TrimSpace(r.Header.Get(ApproverHeader))
	if name == "" {
		name = AdminApprover
	}
	if err := validApproverName(name); err != nil {
		return gate.Approver{}, fmt.Errorf("%s: %w", ApproverHeader, err)
	}
	return gate.Approver{Name: name, Via: "token"}, nil
}

func (d *dashboard) apiDecide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.holds == nil {
			writeError(w, http.StatusNotImplemented, "the hold queue is not enabled")
			return
		}
		who, err := tokenApprover(r)
		if err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		var body DecisionRequest
		if err := decodeJSON(r, &body); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		id := chi.URLParam(r, "id")
		var h *gate.Hold
		if approve {
			h, err = d.holds.Approve(r.Context(), id, who, strings.TrimSpace(body.Reason))
		} else {
			h, err = d.holds.Deny(r.Context(), id, who, strings.TrimSpace(body.Reason))
		}
		if err != nil {
			d.log.Info("hold decision refused", "hold", id, "approver", who.Name, "via", who.Via, "approve", approve, "err", err)
			writeJSON(w, decisionStatus(err), DecisionError{Error: err.Error(), Hold: h})
			return
		}
		d.log.Info("hold decided", "hold", id, "approver", who.Name, "via", who.Via, "approve", approve, "state", h.State)
		writeJSON(w, http.StatusOK, h)
	}
}

// parseReceiptQuery reads session, action, verdict, kind, since, until,
// after, limit and order (desc, the default, or asc) from q.
func parseReceiptQuery(q url.Values, now time.Time) (ledger.Query, error) {
	out := ledger.Query{
		Session:  strings.TrimSpace(q.Get("session")),
		ActionID: strings.TrimSpace(q.Get("action")),
		Limit:    defaultReceiptLimit,
		Reverse:  true,
	}
	if v := strings.TrimSpace(q.Get("verdict")); v != "" {
		vd, err := aarm.ParseVerdict(v)
		if err != nil {
			return out, fmt.Errorf("verdict: %w", err)
		}
		out.Verdict = vd.String()
	}
	if k := strings.TrimSpace(q.Get("kind")); k != "" {
		switch aarm.ReceiptKind(k) {
		case aarm.KindDecision, aarm.KindOutcome, aarm.KindApproval, aarm.KindDeferral, aarm.KindResolution:
			out.Kind = k
		default:
			return out, fmt.Errorf("kind %q: want decision, outcome, approval, deferral or resolution", k)
		}
	}
	var err error
	if out.Since, err = parseTimeParam(q.Get("since"), now); err != nil {
		return out, fmt.Errorf("since: %w", err)
	}
	if out.Until, err = parseTimeParam(q.Get("until"), now); err != nil {
		return out, fmt.Errorf("until: %w", err)
	}
	if a := q.Get("after"); a != "" {
		if out.After, err = strconv.ParseUint(a, 10, 64); err != nil {
			return out, fmt.Errorf("after: want a log index: %w", err)
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxReceiptLimit {
			return out, fmt.Errorf("limit: want 1..%d", maxReceiptLimit)
		}
		out.Limit = n
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		out.Reverse = false
	default:
		return out, errors.New("order: want asc or desc")
	}
	return out, nil
}

// parseTimeParam accepts RFC 3339, a date (2006-01-02, UTC) or a duration
// back from now ("24h").
func parseTimeParam(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 time, YYYY-MM-DD or a duration like 24h", s)
}

func (d *dashboard) apiListReceipts(w http.ResponseWriter, r *http.Request) {
	if d.receipts == nil {
		writeError(w, http.StatusNotImplemented, "the receipt ledger is not enabled")
		return
	}
	q, err := parseReceiptQuery(r.URL.Query(), d.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rs, err := d.receipts.List(q)
	if err != nil {
		d.log.Error("list receipts", "err", err)
		writeError(w, ledgerStatus(err), err.Error())
		return
	}
	if rs == nil {
		rs = []*aarm.Receipt{}
	}
	writeJSON(w, http.StatusOK, ReceiptList{Receipts: rs})
}

// ledgerStatus maps ledger errors to HTTP statuses.
func ledgerStatus(err error) int {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ledger.ErrBadRange), errors.Is(err, ledger.ErrInvalidReceipt):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// apiExportReceipts streams a JSONL bundle (ledger.Export): the matching
// receipts in log order, then a trailer with the latest checkpoint and
// inclusion proofs, verifiable offline with `aarm verify --bundle`.
func (d *dashboard) apiExportReceipts(w http.ResponseWriter, r *http.Request) {
	if d.receipts == nil {
		writeError(w, http.StatusNotImplemented, "the receipt ledger is not enabled")
		return
	}
	vals := r.URL.Query()
	q, err := parseReceiptQuery(vals, d.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.Reverse = false
	if vals.Get("limit") == "" {
		q.Limit = 0 // an export is complete unless asked otherwise
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	cw := &countingWriter{w: w}
	if err := d.receipts.Export(r.Context(), cw, q); err != nil {
		d.log.Error("export receipts", "err", err)
		if cw.n == 0 {
			writeError(w, ledgerStatus(err), err.Error())
		}
		// Past the first byte the status is sent; the bundle lacks its
		// trailer line, which verification reports.
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (d *dashboard) apiGetReceipt(w http.ResponseWriter, r *http.Request) {
	if d.receipts == nil {
		writeError(w, http.StatusNotImplemented, "the receipt ledger is not enabled")
		return
	}
	rc, err := d.receipts.Get(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, ledgerStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rc)
}

func checkpointResponse(cp ledger.SignedCheckpoint) CheckpointResponse {
	return CheckpointResponse{Origin: cp.Origin, Size: cp.Size, RootHash: hex.EncodeToString(cp.Hash), KeyID: cp.KeyID, Note: string(cp.Note)}
}

func (d *dashboard) apiCheckpoint(w http.ResponseWriter, _ *http.Request) {
	if d.receipts == nil {
		writeError(w, http.StatusNotImplemented, "the receipt ledger is not enabled")
		return
	}
	cp, err := d.receipts.Checkpoint()
	if err != nil {
		writeError(w, ledgerStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, checkpointResponse(cp))
}

func (d *dashboard) apiProof(w http.ResponseWriter, r *http.Request) {
	if d.receipts == nil {
		writeError(w, http.StatusNotImplemented, "the receipt ledger is not enabled")
		return
	}
	q := r.URL.Query()
	index, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "index: want a log index (a receipt's ledger.index)")
		return
	}
	resp := ProofResponse{Index: index}
	if s := q.Get("size"); s != "" {
		if resp.TreeSize, err = strconv.ParseUint(s, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "size: want a tree size")
			return
		}
	} else {
		cp, err := d.receipts.Checkpoint()
		if err != nil {
			writeError(w, ledgerStatus(err), err.Error())
			return
		}
		resp.TreeSize, resp.Checkpoint = cp.Size, string(cp.Note)
	}
	hashes, err := d.receipts.InclusionProof(index, resp.TreeSize)
	if err != nil {
		writeError(w, ledgerStatus(err), err.Error())
		return
	}
	resp.Hashes = make([]string, len(hashes))
	for i, h := range hashes {
		resp.Hashes[i] = hex.EncodeToString(h)
	}
	writeJSON(w, http.StatusOK, resp)
}
