package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/aarmproxy/aarm"
)

// Ordered names the comparison operators understand (AARM context contract).
var (
	policyClassOrdinal = map[string]int{"PUBLIC": 0, "INTERNAL": 1, "CONFIDENTIAL": 2, "RESTRICTED": 3}
	policyRiskOrdinal  = map[string]int{"low": 0, "medium": 1, "high": 2, "critical": 3}
)

func policyOrdinal(s string) (int, bool) {
	if n, ok := policyClassOrdinal[strings.ToUpper(s)]; ok {
		return n, true
	}
	n, ok := policyRiskOrdinal[strings.ToLower(s)]
	return n, ok
}

// policyNumber converts numbers of any Go kind, json.Number and numeric strings.
func policyNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, false
		}
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// policyList returns v as a list when it is one.
func policyList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	case []float64:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	case []int:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// policyLookup reads a dotted path from nested maps and lists. Numeric
// segments index lists.
func policyLookup(root map[string]any, path string) (any, bool) {
	var cur any = root
	for part := range strings.SplitSeq(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[part]
			if !ok {
				return nil, false
			}
			cur = v
		case map[string]string:
			v, ok := x[part]
			if !ok {
				return nil, false
			}
			cur = v
		default:
			l, ok := policyList(cur)
			if !ok {
				return nil, false
			}
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(l) {
				return nil, false
			}
			cur = l[i]
		}
	}
	if cur == nil {
		// JSON null is "present but empty"; treat it as absent so that
		// a rule needing the value does not decide on nothing.
		return nil, false
	}
	return cur, true
}

// policyEqual compares JSON-like values: numbers numerically, strings
// exactly, bools, and lists element-wise.
func policyEqual(a, b any) bool {
	if fa, ok := policyNumber(a); ok {
		if _, isStr := a.(string); !isStr {
			if fb, ok := policyNumber(b); ok {
				if _, isStr := b.(string); !isStr {
					return fa == fb
				}
			}
		}
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if ok {
			return x == y
		}
		// "100" (from a query string) equals 100 in the policy.
		fb, okb := policyNumber(b)
		fa, oka := policyNumber(x)
		return okb && oka && fa == fb
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	if fa, ok := policyNumber(a); ok {
		if s, isStr := b.(string); isStr {
			fb, ok := policyNumber(s)
			return ok && fa == fb
		}
	}
	la, oka := policyList(a)
	lb, okb := policyList(b)
	if oka && okb {
		if len(la) != len(lb) {
			return false
		}
		for i := range la {
			if !policyEqual(la[i], lb[i]) {
				return false
			}
		}
		return true
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// policyCompare orders a and b numerically, or ordinally for the data
// classification and risk level names. ok is false when they do not compare.
func policyCompare(a, b any) (int, bool) {
	if sb, ok := b.(string); ok {
		if ob, ok := policyOrdinal(sb); ok {
			sa, ok := a.(string)
			if !ok {
				return 0, false
			}
			oa, ok := policyOrdinal(sa)
			if !ok {
				return 0, false
			}
			return oa - ob, true
		}
	}
	fa, oka := policyNumber(a)
	fb, okb := policyNumber(b)
	if !oka || !okb {
		return 0, false
	}
	switch {
	case fa < fb:
		return -1, true
	case fa > fb:
		return 1, true
	}
	return 0, true
}

// policyDomainOf extracts the lower-case domain of an email address, a URL or a
// bare host ("Alice <a@x.com>", "https://x.com/p", "x.com:443").
func policyDomainOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			return strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		}
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		if a, err := mail.ParseAddress(s); err == nil {
			s = a.Address
			i = strings.LastIndexByte(s, '@')
		}
		s = s[i+1:]
		s = strings.TrimRight(s, ">")
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if h, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(h, "[") {
		s = h
	}
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

// policyDomainWithin reports whether d equals or is a subdomain of one of domains.
func policyDomainWithin(d string, domains []string) bool {
	if d == "" {
		return false
	}
	for _, x := range domains {
		if d == x || strings.HasSuffix(d, "."+x) {
			return true
		}
	}
	return false
}

// policyStrings flattens a value (scalar, list, or list of recipient
// objects with an "email"/"address" key) into strings.
func policyStrings(v any) []string {
	if l, ok := policyList(v); ok {
		var out []string
		for _, e := range l {
			out = append(out, policyStrings(e)...)
		}
		return out
	}
	switch x := v.(type) {
	case string:
		// "a@x.com, b@y.com" header-style lists.
		if strings.Contains(x, ",") && strings.Contains(x, "@") {
			var out []string
			for part := range strings.SplitSeq(x, ",") {
				if p := strings.TrimSpace(part); p != "" {
					out = append(out, p)
				}
			}
			return out
		}
		return []string{x}
	case map[string]any:
		for _, k := range []string{"email", "address", "emailAddress", "url", "host", "domain"} {
			if e, ok := x[k]; ok {
				return policyStrings(e)
			}
		}
		return nil
	case nil:
		return nil
	}
	return []string{fmt.Sprint(v)}
}

// policyString renders a scalar for string policyOperators.
func policyString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case aarm.Effect:
		return string(x), true
	}
	if f, ok := policyNumber(v); ok {
		return strconv.FormatFloat(f, 'f', -1, 64), true
	}
	return "", false
}

// policyEvalCondition applies one condition to a present value. internal is the
// policy's internal domains; destExternal is set for the destination
// condition (it brings Destination.External along).
func policyEvalCondition(c *Condition, actual any, internal []string, destExternal *bool) bool {
	r := policyEvalOperator(c, actual, internal, destExternal)
	if c.Negate {
		return !r
	}
	return r
}

func policyEvalOperator(c *Condition, actual any, internal []string, destExternal *bool) bool {
	switch c.Op {
	case OpExists:
		return c.Value.(bool) // the caller handles absence
	case OpEq:
		if l, ok := policyList(c.Value); ok {
			return policyEqual(actual, l)
		}
		return policyEqual(actual, c.Value)
	case OpNe:
		return !policyEqual(actual, c.Value)
	case OpGt, OpGte, OpLt, OpLte:
		if l, ok := policyList(actual); ok {
			// A list compares by its largest element for gt/gte and its
			// smallest for lt/lte: "any element over" / "all under" read
			// the same way a reviewer expects for amounts.
			if len(l) == 0 {
				return false
			}
			for _, e := range l {
				ok := policyEvalOperator(&Condition{Op: c.Op, Value: c.Value}, e, internal, nil)
				if (c.Op == OpGt || c.Op == OpGte) && ok {
					return true
				}
				if (c.Op == OpLt || c.Op == OpLte) && !ok {
					return false
				}
			}
			return c.Op == OpLt || c.Op == OpLte
		}
		n, ok := policyCompare(actual, c.Value)
		if !ok {
			return false
		}
		switch c.Op {
		case OpGt:
			return n > 0
		case OpGte:
			return n >= 0
		case OpLt:
			return n < 0
		default:
			return n <= 0
		}
	case OpIn:
		if l, ok := policyList(actual); ok {
			if len(l) == 0 {
				return false
			}
			for _, e := range l {
				if !slices.ContainsFunc(c.list, func(x any) bool { return policyEqual(e, x) }) {
					return false
				}
			}
			return true
		}
		return slices.ContainsFunc(c.list, func(x any) bool { return policyEqual(actual, x) })
	case OpContains:
		want := c.list
		if want == nil {
			want = []any{c.Value}
		}
		for _, w := range want {
			if policyContains(actual, w) {
				return true
			}
		}
		return false
	case OpMatches, OpGlob:
		if l, ok := policyList(actual); ok {
			for _, e := range l {
				if s, ok := policyString(e); ok && c.re.MatchString(s) {
					return true
				}
			}
			return false
		}
		s, ok := policyString(actual)
		return ok && c.re.MatchString(s)
	case OpExternal:
		want := c.Value.(bool)
		vals := policyStrings(actual)
		if len(vals) == 0 {
			return false
		}
		ext := false
		for _, s := range vals {
			if !policyDomainWithin(policyDomainOf(s), internal) {
				ext = true
			}
		}
		if destExternal != nil {
			ext = ext && *destExternal
		}
		return ext == want
	case OpDomainAllowlist:
		vals := policyStrings(actual)
		if len(vals) == 0 {
			return false
		}
		allow := make([]string, 0, len(c.list))
		for _, d := range c.list {
			allow = append(allow, d.(string))
		}
		for _, s := range vals {
			if !policyDomainWithin(policyDomainOf(s), allow) {
				return false
			}
		}
		return true
	}
	return false
}

func policyContains(actual, want any) bool {
	if l, ok := policyList(actual); ok {
		return slices.ContainsFunc(l, func(e any) bool { return policyEqual(e, want) })
	}
	if m, ok := actual.(map[string]any); ok {
		s, ok := want.(string)
		if !ok {
			return false
		}
		_, has := m[s]
		return has
	}
	s, ok := actual.(string)
	if !ok {
		return false
	}
	w, ok := policyString(want)
	return ok && strings.Contains(s, w)
}
