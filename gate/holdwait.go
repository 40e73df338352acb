package gate

import (
	"context"
	"fmt"
	"time"

	"github.com/aarmproxy/aarm"
)

// Default hold timeouts, used when a decision names none.
const (
	DefaultStepUpTimeout = 5 * time.Minute
	DefaultDeferTimeout  = 2 * time.Minute
)

// holdAndWait suspends a STEP_UP or DEFER decision until people approve or
// deny it, arriving context resolves it, the client goes away, or it times
// out. Nothing is forwarded meanwhile. It returns the final decision: ALLOW
// or MODIFY when released, DENY otherwise (AARM R4: DEFER is not a soft
// allow; timeouts deny).
func (g *Gate) holdAndWait(ctx context.Context, id aarm.Identity, in evalInput, ev evaluation) aarm.Decision {
	denied := func(reason string) aarm.Decision {
		d := ev.decision
		d.Verdict, d.Reason = aarm.Deny, reason
		return d
	}
	if n := len(g.holds.pendingInSession(id.Session)); id.Session != "" && n >= g.holds.opts.MaxChain {
		return denied(fmt.Sprintf("%s; denied because the session already has %d held actions (holds.max_chain %d)", ev.decision.Reason, n, g.holds.opts.MaxChain))
	}
	now := g.now().UTC()
	source := HoldStepUp
	if ev.decision.Verdict == aarm.Defer {
		source = HoldDefer
	}
	h := &Hold{
		ID: newID("hold"), Source: source, State: HoldPending, Action: ev.action, Decision: ev.decision,
		Context: ev.context, Signals: ev.signals, ContextHash: ev.contextHash,
		Required: 1, CreatedAt: now, ExpiresAt: now.Add(holdTimeout(ev.decision)),
	}
	if intent, ok := ev.context["intent"].(string); ok {
		h.Intent = intent
	}
	if source == HoldStepUp {
		h.Required = g.holds.opts.RequiredApprovals
	}
	e := &holdEntry{hold: h, done: make(chan struct{}), input: in}
	kind := aarm.KindDecision
	if source == HoldDefer {
		kind = aarm.KindDeferral
	}
	h.ReceiptID = g.receiptHold(ctx, e, kind, nil, deferralFor(source, ev.decision.Reason, now), nil)
	if h.ReceiptID == "" {
		return denied(ev.decision.Reason + "; the hold could not be recorded (fail closed)")
	}
	if err := g.holds.add(e); err != nil {
		return denied(fmt.Sprintf("%s; the hold could not be stored: %v (fail closed)", ev.decision.Reason, err))
	}
	g.log.Info("held", "hold", h.ID, "source", string(source), "session", id.Session, "tool", h.Action.Tool,
		"operation", h.Action.Operation, "reason", ev.decision.Reason, "expires", h.ExpiresAt)
	if notify := g.holds.opts.Notify; notify != nil {
		go notify(cloneHold(h))
	}

	for {
		cur := g.holds.snapshot(e)
		timer := time.NewTimer(time.Until(cur.ExpiresAt))
		select {
		case <-e.done:
			timer.Stop()
			final := g.holdFinal(e)
			if !final.Verdict.Forwards() {
				return final
			}
			// AARM R6: the identity captured at submission must still be
			// valid when the held action executes.
			if err := g.opts.Sessions.Revalidate(id); err != nil {
				return denied(fmt.Sprintf("released, but the identity is no longer valid: %v", err))
			}
			return final
		case <-ctx.Done():
			timer.Stop()
			g.endHold(e, HoldGone, "client gone", "client_gone")
			return denied(ev.decision.Reason + "; client gone while held")
		case <-timer.C:
			if cur.Source == HoldDefer && ev.decision.TimeoutAction == aarm.StepUp {
				g.escalate(e, "deferral timed out; escalated to approvers")
				continue
			}
			g.endHold(e, HoldTimedOut, "timeout", "timeout")
			return denied(fmt.Sprintf("timeout: %s was not resolved within %s", cur.Source, cur.ExpiresAt.Sub(cur.CreatedAt).Round(time.Second)))
		}
	}
}

func holdTimeout(d aarm.Decision) time.Duration {
	if d.Timeout > 0 {
		return time.Duration(d.Timeout)
	}
	if d.Verdict == aarm.Defer {
		return DefaultDeferTimeout
	}
	return DefaultStepUpTimeout
}

func (g *Gate) holdFinal(e *holdEntry) aarm.Decision {
	g.holds.mu.Lock()
	defer g.holds.mu.Unlock()
	return e.final
}

// endHold resolves a hold as denied for a reason other than a person's
// decision and records the resolution.
func (g *Gate) endHold(e *holdEntry, state HoldState, resolution, method string) {
	h := g.holds.snapshot(e)
	final := h.Decision
	final.Verdict = aarm.Deny
	final.Reason = fmt.Sprintf("%s (%s)", resolution, h.Decision.Reason)
	now := g.now().UTC()
	if g.holds.resolve(e, state, resolution, final, now) {
		g.receiptHold(context.Background(), e, aarm.KindResolution, nil, &aarm.Deferral{Reason: h.Decision.Reason, ResolutionMethod: method, Time: now}, &final)
	}
}

// escalate turns a deferral into a STEP_UP waiting for people.
func (g *Gate) escalate(e *holdEntry, why string) {
	now := g.now().UTC()
	h, err := g.holds.update(e, func(h *Hold) {
		h.Source = HoldStepUp
		h.Decision.Verdict = aarm.StepUp
		h.Decision.Reason = fmt.Sprintf("%s (%s)", h.Decision.Reason, why)
		h.Required = g.holds.opts.RequiredApprovals
		h.ExpiresAt = now.Add(DefaultStepUpTimeout)
	})
	if err != nil {
		return
	}
	g.receiptHold(context.Background(), e, aarm.KindResolution, nil, &aarm.Deferral{Reason: h.Decision.Reason, ResolutionMethod: "escalated_to_step_up", Time: now}, &h.Decision)
	if notify := g.holds.opts.Notify; notify != nil {
		go notify(h)
	}
}

// reevaluate runs the policy again for a deferred action with the session's
// current context: ALLOW/MODIFY release it, DENY denies it, STEP_UP
// escalates it to approvers, DEFER keeps it waiting.
func (g *Gate) reevaluate(ctx context.Context, e *holdEntry, method string) {
	ev := g.evaluate(e.input)
	if ev.err != nil {
		return
	}
	now := g.now().UTC()
	switch ev.decision.Verdict {
	case aarm.Allow, aarm.Modify, aarm.Deny:
		state := HoldReleased
		if ev.decision.Verdict == aarm.Deny {
			state = HoldDenied
		}
		h := g.holds.snapshot(e)
		if g.holds.resolve(e, state, method, ev.decision, now) {
			g.receiptHold(ctx, e, aarm.KindResolution, nil, &aarm.Deferral{Reason: h.Decision.Reason, ResolutionMethod: method, Time: now}, &ev.decision)
		}
	case aarm.StepUp:
		g.holds.update(e, func(h *Hold) {
			h.Decision = ev.decision
			h.Context, h.Signals, h.ContextHash = ev.context, ev.signals, ev.contextHash
		})
		g.escalate(e, "re-evaluated after "+method)
	case aarm.Defer:
		g.holds.update(e, func(h *Hold) {
			h.Decision.Reason = ev.decision.Reason
			h.Context, h.ContextHash = ev.context, ev.contextHash
		})
	}
}

// waitBehind makes an action wait while an earlier held action of the same
// session on the same target is pending (AARM R4: dependent actions are
// deferred with it, independent ones proceed). It reports false, with a
// reason, when the wait ends in the client going away or the chain is too
// long.
func (g *Gate) waitBehind(ctx context.Context, session string, actions []aarm.Action) (string, bool) {
	if session == "" {
		return "", true
	}
	for {
		var blocker *holdEntry
		pending := g.holds.pendingInSession(session)
		for _, e := range pending {
			h := g.holds.snapshot(e)
			for _, a := range actions {
				if a.Target != "" && a.Target == h.Action.Target && a.Tool == h.Action.Tool {
					blocker = e
				}
			}
		}
		if blocker == nil {
			return "", true
		}
		// Waiting calls count toward the bound too: each pins its body
		// for as long as the hold lasts.
		waiting := g.holds.waiting(session, 0)
		if n := len(pending) + waiting; n >= g.holds.opts.MaxChain {
			return fmt.Sprintf("depends on held action %s and the session already has %d held or waiting actions (holds.max_chain %d)", blocker.hold.ID, n, g.holds.opts.MaxChain), false
		}
		g.holds.waiting(session, 1)
		select {
		case <-blocker.done:
			g.holds.waiting(session, -1)
		case <-ctx.Done():
			g.holds.waiting(session, -1)
			return "client gone while waiting behind held action " + blocker.hold.ID, false
		}
	}
}

// receiptHold writes a receipt for a hold transition and returns its id. d
// is the decision the transition leads to; nil records the hold's own.
func (g *Gate) receiptHold(ctx context.Context, e *holdEntry, kind aarm.ReceiptKind, approval *aarm.Approval, deferral *aarm.Deferral, d *aarm.Decision) string {
	h := g.holds.snapshot(e)
	if d == nil {
		d = &h.Decision
	}
	status := "held"
	if d.Verdict == aarm.Deny {
		status = "blocked"
	}
	r := &aarm.Receipt{
		Kind: kind, Time: g.now().UTC(), Action: g.receiptAction(h.Action), Requester: h.Action.Identity,
		Decision: aarm.RecordDecision(*d), ContextHash: h.ContextHash, Approval: approval, Deferral: deferral,
		Execution: &aarm.Execution{Status: status},
	}
	if _, err := g.opts.Ledger.Append(context.WithoutCancel(ctx), r); err != nil {
		g.log.Error("hold receipt not written", "hold", h.ID, "kind", kind, "err", err)
		return ""
	}
	return r.ID
}

// abortLeftoverHolds resolves holds a previous process left pending: their
// clients are gone with that process, so each is denied with a receipt.
func (g *Gate) abortLeftoverHolds(ctx context.Context) error {
	left, err := g.holds.leftover()
	if err != nil {
		return fmt.Errorf("load holds: %w", err)
	}
	for _, h := range left {
		e := &holdEntry{hold: h, done: make(chan struct{})}
		g.holds.mu.Lock()
		g.holds.entries[h.ID] = e
		g.holds.order = append(g.holds.order, h.ID)
		g.holds.mu.Unlock()
		g.endHold(e, HoldAborted, "process restart", "process_restart")
	}
	return nil
}

// deferralFor is the deferral record of a new hold: DEFERs have one, STEP_UPs
// do not.
func deferralFor(source HoldSource, reason string, now time.Time) *aarm.Deferral {
	if source != HoldDefer {
		return nil
	}
	return &aarm.Deferral{Reason: reason, Time: now}
}
