package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/ledger/internal/canonjson"
)

// errSlow makes appendReceipt give up; CanonicalBytes then encodes with
// encoding/json and canonjson, which also decide every error.
var errSlow = errors.New("ledger: receipt needs the general encoder")

// maxDirectDepth bounds the nesting appendAny writes itself, far below the
// RFC 8785 implementations' limit (canonjson.MaxDepth) that the general
// path enforces exactly.
const maxDirectDepth = 64

// appendReceipt writes the RFC 8785 canonical bytes of r without its
// signature directly, members in sorted order, as encoding/json followed by
// canonjson would (issue 5: json.Marshal and re-parsing cost as much as the
// rest of encoding). Values of type any (parameters, modification values)
// are written directly when they are the types encoding/json decodes into
// (string, float64, bool, nil, []any, map[string]any) and not deeply
// nested; anything else, and any error, returns errSlow. TestCanonicalBytesAgainstJCS
// fills every field of aarm.Receipt by reflection and compares with the
// reference jcs.Transform(json.Marshal(r)), so a field added to the schema
// and not written here fails that test.
func appendReceipt(b []byte, r *aarm.Receipt) ([]byte, error) {
	var err error
	b = append(b, `{"action":`...)
	if b, err = appendAction(b, &r.Action); err != nil {
		return nil, err
	}
	if a := r.Approval; a != nil {
		b = append(b, `,"approval":{"approver":`...)
		b = canonjson.AppendString(b, a.Approver)
		if b, err = appendVerdict(append(b, `,"decision":`...), a.Decision); err != nil {
			return nil, err
		}
		if a.Reason != "" {
			b = canonjson.AppendString(append(b, `,"reason":`...), a.Reason)
		}
		if b, err = appendTime(append(b, `,"time":`...), a.Time); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	if r.ContextHash != "" {
		b = canonjson.AppendString(append(b, `,"context_hash":`...), r.ContextHash)
	}
	if d := r.Decision; d != nil {
		if b, err = appendDecision(append(b, `,"decision":`...), d); err != nil {
			return nil, err
		}
	}
	if d := r.Deferral; d != nil {
		b = canonjson.AppendString(append(b, `,"deferral":{"reason":`...), d.Reason)
		if d.ResolutionMethod != "" {
			b = canonjson.AppendString(append(b, `,"resolution_method":`...), d.ResolutionMethod)
		}
		if b, err = appendTime(append(b, `,"time":`...), d.Time); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	if e := r.Execution; e != nil {
		b = append(b, `,"execution":{`...)
		sep := false
		member := func(name string) {
			if sep {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), name...), `":`...)
			sep = true
		}
		if e.DurationMS != 0 {
			member("duration_ms")
			b = appendInt(b, e.DurationMS)
		}
		if e.Error != "" {
			member("error")
			b = canonjson.AppendString(b, e.Error)
		}
		if e.ResponseDigest != "" {
			member("response_digest")
			b = canonjson.AppendString(b, e.ResponseDigest)
		}
		if !e.StartedAt.IsZero() {
			member("started_at")
			if b, err = appendTime(b, e.StartedAt); err != nil {
				return nil, err
			}
		}
		member("status")
		b = canonjson.AppendString(b, e.Status)
		if e.StatusCode != 0 {
			member("status_code")
			b = appendInt(b, int64(e.StatusCode))
		}
		b = append(b, '}')
	}
	b = canonjson.AppendString(append(b, `,"kind":`...), string(r.Kind))
	b = append(b, `,"ledger":{"index":`...)
	b = appendUint(b, r.Ledger.Index)
	b = canonjson.AppendString(append(b, `,"prev_hash":`...), r.Ledger.PrevHash)
	b = canonjson.AppendString(append(b, `},"receipt_id":`...), r.ID)
	if b, err = appendIdentity(append(b, `,"requester":`...), &r.Requester); err != nil {
		return nil, err
	}
	if b, err = appendTime(append(b, `,"time":`...), r.Time); err != nil {
		return nil, err
	}
	b = canonjson.AppendString(append(b, `,"version":`...), r.Version)
	return append(b, '}'), nil
}

func appendAction(b []byte, a *aarm.ReceiptAction) ([]byte, error) {
	var err error
	b = canonjson.AppendString(append(b, `{"action_id":`...), a.ID)
	if a.ContentDigest != "" {
		b = canonjson.AppendString(append(b, `,"content_digest":`...), a.ContentDigest)
	}
	d := a.Destination
	b = append(b, `,"destination":{"external":`...)
	b = strconv.AppendBool(b, d.External)
	b = canonjson.AppendString(append(b, `,"host":`...), d.Host)
	if d.Port != "" {
		b = canonjson.AppendString(append(b, `,"port":`...), d.Port)
	}
	if d.Scheme != "" {
		b = canonjson.AppendString(append(b, `,"scheme":`...), d.Scheme)
	}
	b = canonjson.AppendString(append(b, `},"effect":`...), string(a.Effect))
	b = canonjson.AppendString(append(b, `,"method":`...), a.Method)
	b = canonjson.AppendString(append(b, `,"operation":`...), a.Operation)
	if len(a.Parameters) > 0 {
		if b, err = appendMap(append(b, `,"parameters":`...), a.Parameters, 3); err != nil {
			return nil, err
		}
	}
	b = canonjson.AppendString(append(b, `,"path":`...), a.Path)
	if a.Target != "" {
		b = canonjson.AppendString(append(b, `,"target":`...), a.Target)
	}
	if b, err = appendTime(append(b, `,"timestamp":`...), a.Timestamp); err != nil {
		return nil, err
	}
	b = canonjson.AppendString(append(b, `,"tool":`...), a.Tool)
	return append(b, '}'), nil
}

func appendIdentity(b []byte, id *aarm.Identity) ([]byte, error) {
	b = append(b, '{')
	sep := false
	member := func(name string) {
		if sep {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), name...), `":`...)
		sep = true
	}
	str := func(name, v string) {
		if v != "" {
			member(name)
			b = canonjson.AppendString(b, v)
		}
	}
	list := func(name string, v []string) {
		if len(v) > 0 {
			member(name)
			b = append(b, '[')
			for i, s := range v {
				if i > 0 {
					b = append(b, ',')
				}
				b = canonjson.AppendString(b, s)
			}
			b = append(b, ']')
		}
	}
	str("agent", id.Agent)
	list("delegation", id.Delegation)
	if !id.ExpiresAt.IsZero() {
		member("expires_at")
		var err error
		if b, err = appendTime(b, id.ExpiresAt); err != nil {
			return nil, err
		}
	}
	str("human", id.Human)
	list("scope", id.Scope)
	str("service", id.Service)
	str("session", id.Session)
	member("verified")
	b = strconv.AppendBool(b, id.Verified)
	return append(b, '}'), nil
}

func appendDecision(b []byte, d *aarm.ReceiptDecision) ([]byte, error) {
	var err error
	b = append(b, '{')
	if d.Alignment != nil {
		if b, err = canonjson.AppendFloat(append(b, `"alignment":`...), *d.Alignment); err != nil {
			return nil, fmt.Errorf("decision.alignment: %w", err)
		}
		b = append(b, ',')
	}
	if d.Classification != "" {
		b = append(canonjson.AppendString(append(b, `"classification":`...), string(d.Classification)), ',')
	}
	if b, err = canonjson.AppendFloat(append(b, `"confidence":`...), d.Confidence); err != nil {
		return nil, fmt.Errorf("decision.confidence: %w", err)
	}
	if len(d.Modifications) > 0 {
		b = append(b, `,"modifications":[`...)
		for i, m := range d.Modifications {
			if i > 0 {
				b = append(b, ',')
			}
			b = canonjson.AppendString(append(b, `{"kind":`...), string(m.Kind))
			if m.Path != "" {
				b = canonjson.AppendString(append(b, `,"path":`...), m.Path)
			}
			if m.Required {
				b = append(b, `,"required":true`...)
			}
			if m.Value != nil {
				if b, err = appendAny(append(b, `,"value":`...), m.Value, 5); err != nil {
					return nil, err
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	p := d.Policy
	b = canonjson.AppendString(append(b, `,"policy":{"id":`...), p.ID)
	b = canonjson.AppendString(append(b, `,"sha256":`...), p.SHA256)
	b = canonjson.AppendString(append(b, `,"version":`...), p.Version)
	b = canonjson.AppendString(append(b, `},"reason":`...), d.Reason)
	if d.RiskLevel != "" {
		b = canonjson.AppendString(append(b, `,"risk_level":`...), string(d.RiskLevel))
	}
	if d.Rule != "" {
		b = canonjson.AppendString(append(b, `,"rule":`...), d.Rule)
	}
	if b, err = appendVerdict(append(b, `,"verdict":`...), d.Verdict); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

func appendVerdict(b []byte, v aarm.Verdict) ([]byte, error) {
	t, err := v.MarshalText()
	if err != nil {
		return nil, err
	}
	return canonjson.AppendString(b, string(t)), nil
}

// appendTime writes t as encoding/json does (RFC 3339 with nanoseconds);
// the text is ASCII without escapes, so it is already canonical.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	j, err := t.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// appendInt and appendUint write integers as RFC 8785 does: as the IEEE 754
// double they become, so plainly below 2^53 and rounded above.
func appendInt(b []byte, v int64) []byte {
	if v > -1<<53 && v < 1<<53 {
		return strconv.AppendInt(b, v, 10)
	}
	b, _ = canonjson.AppendFloat(b, float64(v)) // finite
	return b
}

func appendUint(b []byte, v uint64) []byte {
	if v < 1<<53 {
		return strconv.AppendUint(b, v, 10)
	}
	b, _ = canonjson.AppendFloat(b, float64(v)) // finite
	return b
}

// appendMap writes a map[string]any with members sorted by UTF-16 code
// units. Names encoding/json would write alike (invalid UTF-8) collide, as
// they would in the reference encoding.
func appendMap(b []byte, m map[string]any, depth int) ([]byte, error) {
	if depth > maxDirectDepth {
		return nil, errSlow
	}
	type kv struct {
		k string
		v any
	}
	kvs := make([]kv, 0, len(m))
	for k, v := range m {
		kvs = append(kvs, kv{canonjson.ValidKey(k), v})
	}
	slices.SortFunc(kvs, func(a, b kv) int { return canonjson.CompareKeys(a.k, b.k) })
	b = append(b, '{')
	var err error
	for i, e := range kvs {
		if i > 0 {
			if e.k == kvs[i-1].k {
				return nil, fmt.Errorf("duplicate member name %q", e.k)
			}
			b = append(b, ',')
		}
		b = append(canonjson.AppendString(b, e.k), ':')
		if b, err = appendAny(b, e.v, depth+1); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendAny writes the JSON value types encoding/json decodes into; depth
// is the nesting level v is written at.
func appendAny(b []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return canonjson.AppendString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		return canonjson.AppendFloat(b, x)
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		return appendMap(b, x, depth)
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		if depth > maxDirectDepth {
			return nil, errSlow
		}
		b = append(b, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendAny(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return nil, errSlow
}
