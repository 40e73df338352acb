package inspect

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

var (
	errInvalidJSON  = errors.New("invalid JSON")
	errJSONTooDeep  = fmt.Errorf("JSON nested deeper than %d levels", MaxJSONDepth)
	errDuplicateKey = errors.New("duplicate object key")
)

// parseJSON validates b and returns it parsed (over a private copy of b, so
// the result stays valid whatever the caller later does with b).
func parseJSON(b []byte, stage string) (gjson.Result, error) {
	s := string(b)
	if err := checkJSON(s); err != nil {
		return gjson.Result{}, decodeErr(stage, ErrMalformed, "%w", err)
	}
	return gjson.Parse(s), nil
}

// checkJSON reports whether s is one valid JSON value that is safe to hand to
// gjson and to the rule engine:
//
//   - nesting is bounded by MaxJSONDepth before any recursive parser sees it
//     (gjson's validator recurses per level);
//   - no object repeats a key. gjson returns the first of duplicate keys, while
//     most servers (Go, JavaScript, Python) use the last, so
//     {"method":"tools/list","method":"tools/call"} would be judged as one call
//     and executed as another. Such bodies are refused, not guessed at.
func checkJSON(s string) error {
	if !jsonDepthOK(s, MaxJSONDepth) {
		return errJSONTooDeep
	}
	if !gjson.Valid(s) {
		return errInvalidJSON
	}
	if hasDuplicateKey(gjson.Parse(s)) {
		return errDuplicateKey
	}
	return nil
}

// jsonDepthOK scans s, skipping strings, and reports whether brackets nest at
// most max deep. It does not validate.
func jsonDepthOK(s string, max int) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			for i++; i < len(s); i++ {
				if s[i] == '\\' {
					i++
				} else if s[i] == '"' {
					break
				}
			}
		case '{', '[':
			depth++
			if depth > max {
				return false
			}
		case '}', ']':
			depth--
		}
	}
	return true
}

// hasDuplicateKey reports whether any object in r repeats a key (compared
// after unescaping).
func hasDuplicateKey(r gjson.Result) bool {
	dup := false
	switch {
	case r.IsObject():
		var small [16]string
		keys := small[:0]
		var seen map[string]struct{}
		r.ForEach(func(k, v gjson.Result) bool {
			key := k.Str
			if seen != nil {
				if _, ok := seen[key]; ok {
					dup = true
					return false
				}
				seen[key] = struct{}{}
			} else {
				for _, x := range keys {
					if x == key {
						dup = true
						return false
					}
				}
				keys = append(keys, key)
				if len(keys) == cap(small) {
					seen = make(map[string]struct{}, 2*len(keys))
					for _, x := range keys {
						seen[x] = struct{}{}
					}
				}
			}
			if hasDuplicateKey(v) {
				dup = true
				return false
			}
			return true
		})
	case r.IsArray():
		r.ForEach(func(_, v gjson.Result) bool {
			if hasDuplicateKey(v) {
				dup = true
				return false
			}
			return true
		})
	}
	return dup
}
