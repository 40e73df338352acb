package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/aarmproxy/aarm"
)

// Hold errors, returned to approvers.
var (
	ErrNoHold         = errors.New("no such hold")
	ErrHoldResolved   = errors.New("hold already resolved")
	ErrNotApprover    = errors.New("approver not allowed to decide this hold")
	ErrReasonRequired = errors.New("a reason is required to deny")
	ErrSameApprover   = errors.New("this approver has already approved; another approver must approve too")
)

// holdPrefix is the gate's Badger key prefix for holds.
const holdPrefix = "hold/"

// Hold queue defaults.
const (
	DefaultMaxChain = 3
	// keepResolved bounds the resolved holds kept in memory for the dashboard.
	keepResolved = 500
)

// HoldOptions configures the hold queue.
type HoldOptions struct {
	// MaxChain bounds the held actions one session may have at once (AARM
	// R4: cascades are bounded; over the bound the action is denied).
	MaxChain int
	// RequiredApprovals is how many distinct approvers must approve a
	// STEP_UP (2 = four eyes). Default 1.
	RequiredApprovals int
	// Notify is called (asynchronously) when a hold is created.
	Notify func(h *Hold)
}

// holdEntry is a hold with its waiting machinery.
type holdEntry struct {
	hold *Hold
	// done is closed when the hold reaches a terminal state.
	done chan struct{}
	// final is the decision the hold resolved to (ALLOW/MODIFY release).
	final aarm.Decision
	// input is what re-evaluation needs.
	input evalInput
}

type holdQueue struct {
	db   *badger.DB
	opts HoldOptions

	mu      sync.Mutex
	entries map[string]*holdEntry
	order   []string // creation order of kept holds
	subs    map[int]chan HoldEvent
	nextSub int
	// waiters counts, per session, calls waiting behind a held one.
	waiters map[string]int
}

// waiting adds delta to a session's waiting calls and returns the count.
func (q *holdQueue) waiting(session string, delta int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiters[session] += delta
	n := q.waiters[session]
	if n <= 0 {
		delete(q.waiters, session)
	}
	return n
}

func newHoldQueue(db *badger.DB, opts HoldOptions) *holdQueue {
	if opts.MaxChain <= 0 {
		opts.MaxChain = DefaultMaxChain
	}
	if opts.RequiredApprovals <= 0 {
		opts.RequiredApprovals = 1
	}
	return &holdQueue{db: db, opts: opts, entries: map[string]*holdEntry{}, subs: map[int]chan HoldEvent{}, waiters: map[string]int{}}
}

func (q *holdQueue) persist(h *Hold) error {
	if q.db == nil {
		return nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return q.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(holdPrefix+h.ID), b) })
}

// leftover returns holds persisted as pending by an earlier process.
func (q *holdQueue) leftover() ([]*Hold, error) {
	if q.db == nil {
		return nil, nil
	}
	var out []*Hold
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(holdPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var h Hold
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &h) }); err != nil {
				return err
			}
			if h.State == HoldPending {
				out = append(out, &h)
			}
		}
		return nil
	})
	return out, err
}

// add registers a new pending hold.
func (q *holdQueue) add(e *holdEntry) error {
	if err := q.persist(e.hold); err != nil {
		return err
	}
	q.mu.Lock()
	q.entries[e.hold.ID] = e
	q.order = append(q.order, e.hold.ID)
	q.trimLocked()
	q.publishLocked("created", e.hold)
	q.mu.Unlock()
	return nil
}

// trimLocked forgets the oldest resolved holds beyond keepResolved.
func (q *holdQueue) trimLocked() {
	resolved := 0
	for _, id := range q.order {
		if q.entries[id].hold.State.Terminal() {
			resolved++
		}
	}
	for i := 0; resolved > keepResolved && i < len(q.order); {
		id := q.order[i]
		if q.entries[id].hold.State.Terminal() {
			delete(q.entries, id)
			q.order = slices.Delete(q.order, i, i+1)
			resolved--
			continue
		}
		i++
	}
}

// pendingInSession returns the pending holds of a session, oldest first.
func (q *holdQueue) pendingInSession(session string) []*holdEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*holdEntry
	for _, id := range q.order {
		e := q.entries[id]
		if e.hold.State == HoldPending && e.hold.Action.Identity.Session == session && session != "" {
			out = append(out, e)
		}
	}
	return out
}

// resolve moves a pending hold to a terminal state exactly once. It returns
// false when the hold had already ended.
func (q *holdQueue) resolve(e *holdEntry, state HoldState, resolution string, final aarm.Decision, now time.Time) bool {
	q.mu.Lock()
	if e.hold.State.Terminal() {
		q.mu.Unlock()
		return false
	}
	h := *e.hold
	h.State, h.Resolution, h.ResolvedAt = state, resolution, now
	e.hold = &h
	e.final = final
	q.publishLocked("resolved", &h)
	q.trimLocked()
	q.mu.Unlock()
	close(e.done)
	_ = q.persist(&h)
	return true
}

// update replaces a pending hold's record (an approval added, an escalation).
func (q *holdQueue) update(e *holdEntry, f func(h *Hold)) (*Hold, error) {
	q.mu.Lock()
	if e.hold.State.Terminal() {
		q.mu.Unlock()
		return cloneHold(e.hold), ErrHoldResolved
	}
	h := *e.hold
	h.Approvals = slices.Clone(h.Approvals)
	f(&h)
	e.hold = &h
	q.publishLocked("updated", &h)
	q.mu.Unlock()
	return cloneHold(&h), q.persist(&h)
}

func (q *holdQueue) get(id string) (*holdEntry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[id]
	return e, ok
}

func (q *holdQueue) snapshot(e *holdEntry) *Hold {
	q.mu.Lock()
	defer q.mu.Unlock()
	return cloneHold(e.hold)
}

func (q *holdQueue) publishLocked(typ string, h *Hold) {
	ev := HoldEvent{Type: typ, Hold: cloneHold(h)}
	for _, ch := range q.subs {
		select {
		case ch <- ev:
		default: // a slow subscriber misses live updates, never blocks the gate
		}
	}
}

func cloneHold(h *Hold) *Hold {
	c := *h
	c.Approvals = slices.Clone(h.Approvals)
	return &c
}

var riskRank = map[aarm.RiskLevel]int{aarm.RiskCritical: 0, aarm.RiskHigh: 1, aarm.RiskMedium: 2, aarm.RiskLow: 3, "": 4}

// Holds lists kept holds in the given state ("" = all): pending first, then
// by risk (critical first), then oldest first.
func (g *Gate) Holds(state HoldState) []*Hold {
	q := g.holds
	q.mu.Lock()
	var out []*Hold
	for _, id := range q.order {
		h := q.entries[id].hold
		if state == "" || h.State == state {
			out = append(out, cloneHold(h))
		}
	}
	q.mu.Unlock()
	slices.SortStableFunc(out, func(a, b *Hold) int {
		if ap, bp := a.State == HoldPending, b.State == HoldPending; ap != bp {
			if ap {
				return -1
			}
			return 1
		}
		if d := riskRank[a.Decision.RiskLevel] - riskRank[b.Decision.RiskLevel]; d != 0 {
			return d
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	return out
}

// Hold returns one kept hold.
func (g *Gate) Hold(id string) (*Hold, bool) {
	e, ok := g.holds.get(id)
	if !ok {
		return nil, false
	}
	return g.holds.snapshot(e), true
}

// SubscribeHolds returns live hold events and a function to unsubscribe.
func (g *Gate) SubscribeHolds() (<-chan HoldEvent, func()) {
	q := g.holds
	ch := make(chan HoldEvent, 64)
	q.mu.Lock()
	id := q.nextSub
	q.nextSub++
	q.subs[id] = ch
	q.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			q.mu.Lock()
			delete(q.subs, id)
			q.mu.Unlock()
		})
	}
}

// Approve records an approval. A STEP_UP is released once it has the
// required number of distinct approvals; a DEFER approved by a person is
// released too (the person supplied the missing judgement).
func (g *Gate) Approve(ctx context.Context, id string, who Approver, reason string) (*Hold, error) {
	e, ok := g.holds.get(id)
	if !ok {
		return nil, ErrNoHold
	}
	if err := g.mayDecide(e, who); err != nil {
		return g.holds.snapshot(e), err
	}
	now := g.now().UTC()
	approval := aarm.Approval{Approver: approverLabel(who), Decision: aarm.Allow, Time: now, Reason: reason}
	var released, dup bool
	h, err := g.holds.update(e, func(h *Hold) {
		// Distinct approvers: everything approved with the admin token is
		// one principal, whatever name it claims (four eyes need two people).
		if slices.ContainsFunc(h.Approvals, func(a aarm.Approval) bool {
			return a.Approver == approval.Approver || who.Via == "token" && isTokenApproval(a.Approver)
		}) {
			dup = true
			return
		}
		h.Approvals = append(h.Approvals, approval)
		released = len(h.Approvals) >= h.Required
	})
	if err != nil {
		return h, err
	}
	if dup {
		return h, ErrSameApprover
	}
	g.receiptHold(ctx, e, aarm.KindApproval, &approval, nil, nil)
	if !released {
		return h, nil
	}
	final := e.hold.Decision
	final.Verdict = aarm.Allow
	if len(final.Modifications) > 0 {
		final.Verdict = aarm.Modify
	}
	names := make([]string, len(h.Approvals))
	for i, a := range h.Approvals {
		names[i] = a.Approver
	}
	final.Reason = fmt.Sprintf("approved by %s (%s: %s)", strings.Join(names, ", "), e.hold.Source, e.hold.Decision.Reason)
	g.holds.resolve(e, HoldApproved, "approved by "+strings.Join(names, ", "), final, now)
	return g.holds.snapshot(e), nil
}

// Deny denies a held action; a reason is required.
func (g *Gate) Deny(ctx context.Context, id string, who Approver, reason string) (*Hold, error) {
	e, ok := g.holds.get(id)
	if !ok {
		return nil, ErrNoHold
	}
	if strings.TrimSpace(reason) == "" {
		return g.holds.snapshot(e), ErrReasonRequired
	}
	if err := g.mayDecide(e, who); err != nil {
		return g.holds.snapshot(e), err
	}
	now := g.now().UTC()
	approval := aarm.Approval{Approver: approverLabel(who), Decision: aarm.Deny, Time: now, Reason: reason}
	final := e.hold.Decision
	final.Verdict = aarm.Deny
	final.Reason = fmt.Sprintf("denied by %s: %s", who.Name, reason)
	if !g.holds.resolve(e, HoldDenied, final.Reason, final, now) {
		return g.holds.snapshot(e), ErrHoldResolved
	}
	g.receiptHold(ctx, e, aarm.KindApproval, &approval, nil, &final)
	return g.holds.snapshot(e), nil
}

// mayDecide checks that who may decide e: it is pending, the approver is
// named by the rule (when it names any), and the approver is not the agent.
func (g *Gate) mayDecide(e *holdEntry, who Approver) error {
	h := g.holds.snapshot(e)
	if h.State.Terminal() {
		return ErrHoldResolved
	}
	if who.Name == "" {
		return ErrNotApprover
	}
	// The agent and the session can never approve their own action.
	if who.Name == h.Action.Identity.Agent || who.Name == h.Action.Identity.Session || IsToken(who.Name) {
		return fmt.Errorf("%w: the acting agent cannot approve its own action", ErrNotApprover)
	}
	if !approverNamed(h.Decision.Approvers, who, h.Action.Identity) {
		return fmt.Errorf("%w: this rule needs one of %s", ErrNotApprover, strings.Join(h.Decision.Approvers, ", "))
	}
	return nil
}

// tokenSuffix marks approvals made with the admin token under a claimed name.
const tokenSuffix = " (admin token)"

// approverLabel is how an approval records its approver: a name claimed on
// an admin-token request is labelled as such, since the token proves only
// that the admin token was used.
func approverLabel(who Approver) string {
	if who.Via == "token" && who.Name != AdminApprover {
		return who.Name + tokenSuffix
	}
	return who.Name
}

func isTokenApproval(label string) bool {
	return label == AdminApprover || strings.HasSuffix(label, tokenSuffix)
}

// SessionOwner in a rule's approvers names the human the session acts for.
const SessionOwner = "session-owner"

// AdminApprover is the approver name of the admin token (a single-user
// install's owner), who may decide any hold: whoever holds the admin token
// controls the policy anyway.
const AdminApprover = "admin"

// approverNamed reports whether who may decide for a rule naming approvers
// (none named: anyone with dashboard or API access).
func approverNamed(approvers []string, who Approver, acting aarm.Identity) bool {
	if len(approvers) == 0 || who.Via == "token" {
		return true // the admin token decides as admin, whatever name it claims
	}
	for _, a := range approvers {
		if a == who.Name || a == SessionOwner && acting.Human != "" && who.Name == acting.Human {
			return true
		}
	}
	return false
}

// AddContext records context supplied for a session and re-evaluates the
// session's deferred actions with it (the deferral service).
func (g *Gate) AddContext(sessionID string, in ContextInput) error {
	if _, ok := g.opts.Sessions.Get(sessionID); !ok {
		return fmt.Errorf("%w: %s", ErrNoSession, sessionID)
	}
	sess, _ := g.opts.Sessions.Get(sessionID)
	if in.Intent != "" {
		if sess.Intent == "" {
			if _, err := g.opts.Sessions.SetIntent(sessionID, in.Intent); err != nil {
				return err
			}
			g.ctx.session(sess.Identity(), in.Intent)
		} else {
			// The original intent is what the session was started for;
			// later statements are kept as facts, never replace it.
			if in.Facts == nil {
				in.Facts = map[string]any{}
			}
			in.Facts["intent_update"] = in.Intent
		}
	}
	if len(in.Facts) > 0 {
		g.ctx.addFacts(sess.Identity(), in.Facts, in.Source)
	}
	for _, e := range g.holds.pendingInSession(sessionID) {
		if e.hold.Source == HoldDefer {
			g.reevaluate(context.Background(), e, "context supplied"+sourceSuffix(in.Source))
		}
	}
	return nil
}

func sourceSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " by " + s
}
