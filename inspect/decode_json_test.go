package inspect

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// refDuplicateKey is a slow, obviously correct reference for scanJSON's
// duplicate-key check, walking gjson's parse.
func refDuplicateKey(r gjson.Result) bool {
	if !r.IsObject() && !r.IsArray() {
		return false // ForEach on a scalar visits the scalar itself
	}
	dup := false
	seen := map[string]bool{}
	r.ForEach(func(k, v gjson.Result) bool {
		if r.IsObject() {
			if seen[k.Str] {
				dup = true
				return false
			}
			seen[k.Str] = true
		}
		if refDuplicateKey(v) {
			dup = true
			return false
		}
		return true
	})
	return dup
}

var checkJSONCases = []struct {
	in   string
	want error
}{
	{`{}`, nil},
	{`{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}`, nil},
	{`{"a":"x","a":"y"}`, errDuplicateKey},
	{`{"a":{"b":1,"b":2}}`, errDuplicateKey},
	{`[{"a":1},{"b":{"c":[{"d":1,"d":1}]}}]`, errDuplicateKey},
	{`{"t\u006f":1,"to":2}`, errDuplicateKey},
	{`{"\"":1,"\\":2,"\/":3,"/":4}`, errDuplicateKey},
	{`{"k":"a,\"k\":1","v":"{\"k\":2}"}`, nil},
	{`{"a":[1,2,{"a":1}],"b":"a"}`, nil},
	{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"s":19}`, nil},
	{`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"q":19}`, errDuplicateKey},
	{`{"x":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18},"a":1,"x2":{"r":1}}`, nil},
	{strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth), nil},
	{strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), errJSONTooDeep},
	{strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), errJSONTooDeep},
	{`{"a":1,"a":2,"z":` + strings.Repeat("[", 1<<16), errDuplicateKey},
	{`{"a":`, errInvalidJSON},
	{`{"a":1}}`, errInvalidJSON},
	{`"unterminated`, errInvalidJSON},
	{``, errInvalidJSON},
}

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range checkJSONCases {
		if got := checkJSON(tc.in); got != tc.want {
			t.Errorf("checkJSON(%.60q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzCheckJSON compares scanJSON's duplicate-key answer with the reference
// on every input gjson accepts.
func FuzzCheckJSON(f *testing.F) {
	for _, tc := range checkJSONCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkJSON(s)
		if err == errJSONTooDeep || err == errInvalidJSON || !gjson.Valid(s) {
			return
		}
		if ref := refDuplicateKey(gjson.Parse(s)); ref != (err == errDuplicateKey) {
			t.Fatalf("checkJSON(%q) = %v, reference duplicate = %v", s, err, ref)
		}
	})
}
