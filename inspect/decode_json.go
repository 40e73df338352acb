package inspect

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
	// The scan must finish before gjson.Valid runs: it is what bounds the
	// validator's recursion. When it stops early (duplicate key) the input is
	// refused without validating the rest.
	if err := scanJSON(s, MaxJSONDepth); err != nil {
		return err
	}
	if !gjson.Valid(s) {
		return errInvalidJSON
	}
	return nil
}

// scanJSON makes one pass over s, skipping strings, and reports nesting
// deeper than maxDepth (before any recursive parser sees it: gjson's
// validator recurses per level) and objects that repeat a key (compared
// after unescaping). It does not validate: on invalid JSON its answer is
// meaningless and the caller's validation decides.
func scanJSON(s string, maxDepth int) error {
	type frame struct {
		obj      bool
		keyStart int                 // this object's keys are keys[keyStart:]
		seen     map[string]struct{} // replaces the linear scan for large objects
	}
	const linearKeys = 16
	var (
		stackBuf  [16]frame
		stack     = stackBuf[:0]
		keysBuf   [64]string
		keys      = keysBuf[:0]
		expectKey bool
	)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			// Find the closing quote: the next '"' preceded by an even
			// number of backslashes. Each backslash run is counted once.
			start := i
			for i++; ; i++ {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return errInvalidJSON
				}
				i += j
				n := 0
				for k := i - 1; k > start && s[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
			if !expectKey || len(stack) == 0 || !stack[len(stack)-1].obj {
				continue
			}
			expectKey = false
			key := s[start+1 : i]
			if strings.IndexByte(key, '\\') >= 0 {
				key = gjson.Parse(s[start : i+1]).Str
			}
			f := &stack[len(stack)-1]
			if f.seen != nil {
				if _, dup := f.seen[key]; dup {
					return errDuplicateKey
				}
				f.seen[key] = struct{}{}
				continue
			}
			if slices.Contains(keys[f.keyStart:], key) {
				return errDuplicateKey
			}
			keys = append(keys, key)
			if len(keys)-f.keyStart > linearKeys {
				f.seen = make(map[string]struct{}, 4*linearKeys)
				for _, k := range keys[f.keyStart:] {
					f.seen[k] = struct{}{}
				}
				keys = keys[:f.keyStart]
			}
		case '{', '[':
			if len(stack) >= maxDepth {
				return errJSONTooDeep
			}
			obj := s[i] == '{'
			stack = append(stack, frame{obj: obj, keyStart: len(keys)})
			expectKey = obj
		case '}', ']':
			if len(stack) == 0 {
				return errInvalidJSON
			}
			keys = keys[:stack[len(stack)-1].keyStart]
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].obj
		case ':':
			expectKey = false
		}
	}
	return nil
}
