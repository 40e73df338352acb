// Package gate is the AARM control plane: it authenticates agents to sessions,
// turns each proxied request into a canonical action, gathers the session's
// context, asks the policy for a decision, applies MODIFY edits, holds
// STEP_UP and DEFER decisions, and writes the decision receipt before the
// proxy may forward anything. Every error path denies (DESIGN.md §7.1).
package gate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/aarmproxy/aarm/rules"
)

// Mapper maps a decoded request to its canonical actions (rules.Catalog).
type Mapper interface {
	Map(req *inspect.Request) (*rules.Mapping, error)
}

// PolicySource hands out the policy in force (rules.PolicyStore).
type PolicySource interface {
	Current() *rules.Policy
}

// Recorder appends receipts durably (ledger.Ledger).
type Recorder interface {
	Append(ctx context.Context, r *aarm.Receipt) (aarm.LedgerPosition, error)
}

// Options wires a Gate.
type Options struct {
	Sessions *Sessions
	Mapper   Mapper
	Policy   PolicySource
	Ledger   Recorder
	Limits   inspect.Limits
	// DenyHosts are destinations refused before anything else (exact host
	// or "*.suffix").
	DenyHosts []string
	// AllowAnonymous lets token-less requests act as an unverified identity.
	AllowAnonymous bool
	// DB persists holds (key prefix "hold/"); nil keeps them in memory only.
	DB      *badger.DB
	Holds   HoldOptions
	Context ContextOptions
	// OnDecision, when set, is told every final decision (for metrics).
	OnDecision func(d aarm.Decision, a aarm.Action, took time.Duration)
	Logger     *slog.Logger
	Now        func() time.Time
}

// Gate mediates every request the proxy receives.
type Gate struct {
	opts  Options
	rates *rules.RateLimiter
	log   *slog.Logger
	now   func() time.Time

	holds *holdQueue
	ctx   *accumulator
	// held marks requests waiting in a hold (or behind one), for Held.
	held sync.Map
}

// Held reports whether req is waiting in a hold or behind one, so the proxy
// does not cut it short with its decision timeout (proxy.HoldReporter).
func (g *Gate) Held(req *Request) bool {
	_, ok := g.held.Load(req)
	return ok
}

// New builds a gate. Sessions, Mapper, Policy and Ledger are required: a
// gate that cannot map, decide or record would have to deny everything.
// Holds left pending by an earlier process are resolved DENY with a receipt.
func New(opts Options) (*Gate, error) {
	switch {
	case opts.Sessions == nil:
		return nil, errors.New("gate: sessions registry is required")
	case opts.Mapper == nil:
		return nil, errors.New("gate: rule catalog is required")
	case opts.Policy == nil:
		return nil, errors.New("gate: policy is required")
	case opts.Ledger == nil:
		return nil, errors.New("gate: ledger is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Gate{
		opts: opts, rates: rules.NewRateLimiter(), log: opts.Logger, now: opts.Now,
		holds: newHoldQueue(opts.DB, opts.Holds),
		ctx:   newAccumulator(opts.Context, newContextLog(opts.DB, opts.Logger, opts.Now)),
	}
	if err := g.abortLeftoverHolds(context.Background()); err != nil {
		return nil, err
	}
	opts.Sessions.onEnd(func(s *Session) {
		g.ctx.log.append(s.ID, "end", map[string]any{"reason": s.EndReason})
		g.ctx.forget(s.ID)
	})
	return g, nil
}

// Close flushes the context log. Call it after the proxy has stopped.
func (g *Gate) Close() { g.ctx.log.close() }

// Authenticate validates a Proxy-Authorization header value ("Basic
// base64(agent:token)") and returns the identity captured at submission.
func (g *Gate) Authenticate(proxyAuthorization string) (aarm.Identity, error) {
	user, token, ok := parseBasic(proxyAuthorization)
	if !ok || token == "" {
		if g.opts.AllowAnonymous {
			agent := user
			if agent == "" {
				agent = "anonymous"
			}
			return aarm.Identity{Agent: agent, Verified: false}, nil
		}
		if proxyAuthorization != "" && !ok {
			return aarm.Identity{}, ErrBadToken
		}
		return aarm.Identity{}, ErrNoToken
	}
	return g.opts.Sessions.Authenticate(token)
}

func parseBasic(h string) (user, pass string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// deniedStatus is the HTTP status for refusals that do not name one.
const deniedStatus = http.StatusForbidden

// Mediate judges one request and returns what the proxy must do. It never
// returns nil; a panic or error anywhere denies.
func (g *Gate) Mediate(ctx context.Context, req *Request) (res *Result) {
	start := g.now()
	action := baseAction(req, start)
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("gate panic", "panic", p, "stack", string(debug.Stack()))
			res = &Result{Action: action, Status: http.StatusInternalServerError,
				Decision: aarm.Decision{Verdict: aarm.Deny, Reason: "internal error in the gate (fail closed)"}}
			res.ReceiptID = g.record(ctx, res, req.Identity, "")
		}
		g.logDecision(req, res, g.now().Sub(start))
	}()
	res = g.mediate(ctx, req, action)
	if res.Decision.Verdict.Forwards() && res.ReceiptID == "" {
		// The decision receipt must be durable before anything leaves.
		res.Decision = aarm.Decision{Verdict: aarm.Deny, Reason: "decision receipt could not be written (fail closed)", Policy: res.Decision.Policy}
		res.Status = http.StatusServiceUnavailable
	}
	return res
}

func (g *Gate) mediate(ctx context.Context, req *Request, action aarm.Action) *Result {
	deny := func(status int, reason string) *Result {
		res := &Result{Action: action, Status: status, Decision: aarm.Decision{Verdict: aarm.Deny, Reason: reason, RiskLevel: aarm.RiskMedium}}
		res.ReceiptID = g.record(ctx, res, req.Identity, "")
		return res
	}
	if req.Refusal != "" {
		status := req.RefusalStatus
		if status == 0 {
			status = deniedStatus
		}
		return deny(status, req.Refusal)
	}
	if req.URL == nil {
		return deny(http.StatusBadRequest, "request without a URL")
	}
	if err := g.opts.Sessions.Revalidate(req.Identity); err != nil {
		return deny(http.StatusProxyAuthRequired, err.Error())
	}
	if pattern, ok := matchHost(g.opts.DenyHosts, req.URL.Hostname()); ok {
		return deny(deniedStatus, fmt.Sprintf("destination %s is on the hosts.deny list (%s)", req.URL.Hostname(), pattern))
	}

	// A body forwarded uninspected (passthrough host) is judged without
	// its bytes; the receipt and the signals say so.
	decoded, err := inspect.DecodeRequest(req.Method, req.URL, req.Header, req.Body, g.opts.Limits)
	if err != nil {
		status := deniedStatus
		if errors.Is(err, inspect.ErrTooLarge) || errors.Is(err, inspect.ErrExpansion) {
			status = http.StatusRequestEntityTooLarge
		}
		return deny(status, "request body could not be inspected: "+err.Error())
	}
	mapping, err := g.opts.Mapper.Map(decoded)
	if err != nil || mapping == nil || len(mapping.Actions) == 0 {
		if err == nil {
			err = errors.New("no action")
		}
		return deny(deniedStatus, "request could not be mapped to an action: "+err.Error())
	}
	first := mapping.Actions[0]
	first.ID = action.ID
	g.llmExchange(req.Identity, first, mapping.LLM)
	if sess, ok := g.opts.Sessions.Get(req.Identity.Session); ok {
		g.ctx.session(req.Identity, sess.Intent) // the intent is the origin of the signals below
	}
	scanned := g.ctx.scanContent(decoded.Fields(), decoded.Text())
	in := evalInput{identity: req.Identity}
	var findings []inspect.Finding
	for i, a := range mapping.Actions {
		a.ID = action.ID
		if len(mapping.Actions) > 1 {
			a.ID = fmt.Sprintf("%s.%d", action.ID, i)
		}
		a.Timestamp = action.Timestamp
		a.Identity = req.Identity
		a.ContentDigest = action.ContentDigest
		sig, f := g.ctx.signalsWith(req.Identity, a, scanned, g.now())
		sig["body_uninspected"] = req.BodyUninspected != ""
		a.RiskSignals = sig
		in.actions = append(in.actions, a)
		in.signals = append(in.signals, sig)
		if i == 0 {
			findings = f
		}
	}
	action = in.actions[0]

	// AARM R4: an action that depends on a held one (same session, same
	// target) waits behind it; independent actions proceed.
	g.held.Store(req, true)
	reason, ok := g.waitBehind(ctx, req.Identity.Session, in.actions)
	g.held.Delete(req)
	if !ok {
		return deny(deniedStatus, reason)
	}

	ev := g.evaluate(in)
	if ev.err != nil {
		return deny(http.StatusServiceUnavailable, ev.err.Error())
	}
	res := &Result{Action: ev.action, Decision: ev.decision, Status: deniedStatus}
	if v := ev.decision.Verdict; v == aarm.StepUp || v == aarm.Defer {
		g.held.Store(req, true)
		res.Decision = g.holdAndWait(ctx, req.Identity, in, ev)
		g.held.Delete(req)
	}

	if res.Decision.Verdict == aarm.Modify {
		edited, changes, err := rules.ApplyModifications(res.Decision.Modifications,
			rules.EditRequest{URL: req.URL, Header: req.Header, Body: decoded.Body, ContentType: decoded.ContentType}, redactions(findings))
		if err != nil {
			res.Decision.Verdict = aarm.Deny
			res.Decision.Reason = fmt.Sprintf("%s; the modification could not be applied: %v", res.Decision.Reason, err)
		} else {
			res.URL, res.Header, res.Body = edited.URL, edited.Header.Clone(), edited.Body
			// The body was decoded for editing; it leaves unencoded.
			res.Header.Del("Content-Encoding")
			if len(changes) > 0 {
				res.Decision.Reason = fmt.Sprintf("%s (modified: %s)", res.Decision.Reason, strings.Join(changes, "; "))
			}
			if why := g.verifyModified(req, res, in.identity, action); why != "" {
				res.Decision.Verdict = aarm.Deny
				res.Decision.Reason = fmt.Sprintf("%s; denied because %s", res.Decision.Reason, why)
			}
		}
	}

	if req.BodyUninspected != "" {
		res.Decision.Reason += " (body not inspected: " + req.BodyUninspected + ")"
	}
	res.ReceiptID = g.record(ctx, res, req.Identity, ev.contextHash)
	now := g.now()
	if res.ReceiptID != "" && res.Decision.Verdict.Forwards() {
		for _, k := range ev.rateKeys {
			g.rates.Record(k, now)
		}
		res.pending = &pending{action: res.Action, recorded: res.recorded, decision: res.Decision, started: now}
	}
	g.ctx.record(req.Identity, in.actions, in.signals, res.Decision, now)
	return res
}

// redactions turns DLP findings into MODIFY redactions. Only findings in a
// field itself (no decoding chain) can be redacted in place; the policy's
// redact edit fails, and so denies, when an encoded finding remains.
func redactions(fs []inspect.Finding) []rules.Redaction {
	out := make([]rules.Redaction, 0, len(fs))
	for _, f := range fs {
		out = append(out, rules.Redaction{Location: f.Location, Value: f.Value, Placeholder: f.Placeholder})
	}
	return out
}

// evalInput is what evaluating (and re-evaluating) a request needs.
type evalInput struct {
	actions  []aarm.Action
	signals  []map[string]any
	identity aarm.Identity
}

// evaluation is the combined decision for a request's actions.
type evaluation struct {
	decision    aarm.Decision
	action      aarm.Action
	context     map[string]any
	signals     map[string]any
	contextHash string
	rateKeys    []string
	err         error
}

// evaluate asks the policy in force about every action of a request; the
// most restrictive decision wins.
func (g *Gate) evaluate(in evalInput) evaluation {
	policy := g.opts.Policy.Current()
	if policy == nil {
		return evaluation{err: errors.New("no policy loaded (fail closed)")}
	}
	now := g.now()
	sess, _ := g.opts.Sessions.Get(in.identity.Session)
	snapshot := g.ctx.snapshot(in.identity, sess, now)
	ev := evaluation{context: snapshot, contextHash: hashJSON(snapshot)}
	for i, a := range in.actions {
		d, diag := rules.Evaluate(policy, rules.Input{
			Action: a, Context: snapshot, Signals: in.signals[i],
			Identity: in.identity, Now: now, Rates: g.rates,
		})
		if i == 0 || moreSevere(d.Verdict, ev.decision.Verdict) {
			ev.decision, ev.action, ev.signals = d, a, in.signals[i]
		}
		ev.rateKeys = append(ev.rateKeys, diag.RateKeys()...)
	}
	return ev
}

// severity orders verdicts for combining the decisions of a batch: the most
// restrictive one wins.
var severity = map[aarm.Verdict]int{aarm.Allow: 0, aarm.Modify: 1, aarm.StepUp: 2, aarm.Defer: 3, aarm.Deny: 4}

func moreSevere(a, b aarm.Verdict) bool { return severity[a] > severity[b] }

// Observe records the outcome of a forwarded request.
func (g *Gate) Observe(ctx context.Context, res *Result, resp *Response) {
	if res == nil || res.pending == nil {
		return
	}
	p := res.pending
	exec := &aarm.Execution{Status: "forwarded", StartedAt: resp.StartedAt, DurationMS: resp.Duration.Milliseconds(), StatusCode: resp.StatusCode}
	if resp.Err != nil {
		exec.Status, exec.Error = "error", resp.Err.Error()
	}
	if resp.Body != nil {
		sum := sha256.Sum256(resp.Body)
		exec.ResponseDigest = "sha256:" + hex.EncodeToString(sum[:])
		if resp.Truncated {
			exec.ResponseDigest += ";truncated"
		}
	}
	r := &aarm.Receipt{
		Kind: aarm.KindOutcome, Time: g.now().UTC(), Action: p.recorded,
		Requester: p.action.Identity, Decision: aarm.RecordDecision(p.decision), Execution: exec,
	}
	if _, err := g.opts.Ledger.Append(context.WithoutCancel(ctx), r); err != nil {
		g.log.Error("outcome receipt not written", "action", p.action.ID, "err", err)
	}
	if resp.Err == nil {
		decoded, err := inspect.DecodeResponse(resp.StatusCode, resp.Header, resp.Body, g.opts.Limits)
		var fields []inspect.Field
		text := ""
		if err == nil {
			fields, text = decoded.Fields(), decoded.Text()
		}
		g.ctx.observeData(p.action.Identity, p.action.ID, p.action.Destination.Host, fields, text, err == nil)
	}
}

// record writes the decision receipt and returns its id ("" on failure).
func (g *Gate) record(ctx context.Context, res *Result, id aarm.Identity, contextHash string) string {
	exec := &aarm.Execution{Status: "pending"}
	if !res.Decision.Verdict.Forwards() {
		exec.Status = "blocked"
	}
	// The receipt form of the action (sensitive values hashed) is made
	// once and reused by the log line and the outcome receipt.
	res.recorded = g.receiptAction(res.Action)
	r := &aarm.Receipt{
		Kind: aarm.KindDecision, Time: g.now().UTC(), Action: res.recorded,
		Requester: id, Decision: aarm.RecordDecision(res.Decision), ContextHash: contextHash, Execution: exec,
	}
	if _, err := g.opts.Ledger.Append(context.WithoutCancel(ctx), r); err != nil {
		g.log.Error("decision receipt not written", "action", res.Action.ID, "err", err)
		return ""
	}
	return r.ID
}

// hashJSON is "sha256:<hex>" of v's JSON encoding (maps encode with sorted
// keys, so equal snapshots hash equal).
func hashJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// baseAction is what is known of a request before it is mapped: enough for a
// receipt when it is refused early.
func baseAction(req *Request, now time.Time) aarm.Action {
	a := aarm.Action{
		ID: newID("act"), Timestamp: now.UTC(), Tool: "http", Method: req.Method,
		Identity: req.Identity, Effect: aarm.EffectWrite,
	}
	a.Operation = "http." + strings.ToLower(req.Method)
	if req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions {
		a.Effect = aarm.EffectRead
	}
	if req.URL != nil {
		a.Path = req.URL.EscapedPath()
		a.Target = req.URL.Hostname()
		a.Destination = aarm.Destination{Host: req.URL.Hostname(), Port: req.URL.Port(), Scheme: req.URL.Scheme, External: true}
	}
	if len(req.Body) > 0 {
		sum := sha256.Sum256(req.Body)
		a.ContentDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return a
}

// matchHost reports whether host matches one of the patterns (exact, or
// "*.suffix" matching any subdomain of suffix).
func matchHost(patterns []string, host string) (string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	for _, p := range patterns {
		lp := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(p)), ".")
		if suffix, ok := strings.CutPrefix(lp, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return p, true
			}
		} else if host == lp {
			return p, true
		}
	}
	return "", false
}

// logDecision writes the one canonical line per decision (fixed keys).
func (g *Gate) logDecision(req *Request, res *Result, d time.Duration) {
	host, path := "", ""
	if req.URL != nil {
		host = req.URL.Host
		path = res.recorded.Path
		if path == "" {
			path = g.receiptAction(res.Action).Path // no receipt was written
		}
	}
	g.log.Info("decision",
		"session", req.Identity.Session, "agent", req.Identity.Agent, "human", req.Identity.Human,
		"method", req.Method, "host", host, "path", path,
		"tool", res.Action.Tool, "operation", res.Action.Operation, "target", res.Action.Target,
		"verdict", res.Decision.Verdict.String(), "rule", res.Decision.Rule, "reason", res.Decision.Reason,
		"receipt", res.ReceiptID, "duration", d)
	if g.opts.OnDecision != nil {
		g.opts.OnDecision(res.Decision, res.Action, d)
	}
}

// verifyModified judges the request as MODIFY will forward it. An edit that
// missed what the rule read (a cap on the query while the value travels in
// the body, a redaction that left an encoded copy) leaves a request the
// policy still objects to: then the MODIFY is refused rather than trusted.
// The edited request must be allowed, or modified again to the same bytes.
func (g *Gate) verifyModified(req *Request, res *Result, id aarm.Identity, base aarm.Action) string {
	h := res.Header.Clone()
	decoded, err := inspect.DecodeRequest(req.Method, res.URL, h, res.Body, g.opts.Limits)
	if err != nil {
		return "the modified request cannot be inspected: " + err.Error()
	}
	mapping, err := g.opts.Mapper.Map(decoded)
	if err != nil || len(mapping.Actions) == 0 {
		return "the modified request cannot be mapped"
	}
	scanned := g.ctx.scanContent(decoded.Fields(), decoded.Text())
	in := evalInput{identity: id}
	for i, a := range mapping.Actions {
		a.ID, a.Timestamp, a.Identity = fmt.Sprintf("%s.m%d", base.ID, i), base.Timestamp, id
		sig, _ := g.ctx.signalsWith(id, a, scanned, g.now())
		in.actions, in.signals = append(in.actions, a), append(in.signals, sig)
	}
	ev := g.evaluate(in)
	switch {
	case ev.err != nil:
		return ev.err.Error()
	case ev.decision.Verdict == aarm.Allow:
		return ""
	case ev.decision.Verdict != aarm.Modify:
		return fmt.Sprintf("after the modification the policy still says %s (%s)", ev.decision.Verdict, ev.decision.Reason)
	}
	// The same rule modifying again because its conditions on the request
	// still hold means the edit missed the value those conditions read.
	if ev.decision.Rule == res.Decision.Rule {
		if r, ok := g.opts.Policy.Current().Rule(ev.decision.Rule); ok && (len(r.Match.Parameters) > 0 || len(r.Match.RiskSignals) > 0 || r.When != "") {
			return "the modification did not take effect on the value the rule read (its conditions still hold)"
		}
	}
	again, _, err := rules.ApplyModifications(ev.decision.Modifications,
		rules.EditRequest{URL: res.URL, Header: h, Body: res.Body, ContentType: decoded.ContentType}, nil)
	if err != nil || again.URL.String() != res.URL.String() || !bytes.Equal(again.Body, res.Body) {
		return "the modification did not take effect on the value the rule read"
	}
	return ""
}
