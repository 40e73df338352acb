package ledger

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/gowebpki/jcs"
)

// TestCanonicalBytesAgainstJCS checks CanonicalBytes, which canonicalises
// with ledger/internal/canonjson, against the reference jcs.Transform of the
// same receipt. The receipts are filled by reflection, so a field added to
// aarm.Receipt later is covered without touching this test.
func TestCanonicalBytesAgainstJCS(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	n := 3000
	if testing.Short() {
		n = 300
	}
	direct := 0
	defer func() {
		// Most receipts must take appendReceipt's direct path, or the
		// comparison below says little about it.
		if direct < n/3 {
			t.Errorf("appendReceipt wrote %d of %d receipts itself, want at least a third", direct, n)
		}
	}()
	for i := range n {
		var r aarm.Receipt
		fillRandom(rng, reflect.ValueOf(&r).Elem(), 0)
		if _, err := appendReceipt(nil, &r); err == nil {
			direct++
		}
		got, err := CanonicalBytes(&r)
		c := r
		c.Signature = nil
		raw, merr := json.Marshal(&c)
		if merr != nil {
			if err == nil {
				t.Fatalf("receipt %d: CanonicalBytes succeeded, json.Marshal failed: %v", i, merr)
			}
			continue
		}
		want, werr := jcs.Transform(raw)
		if (err != nil) != (werr != nil) {
			t.Fatalf("receipt %d: CanonicalBytes error %v, jcs error %v\n%s", i, err, werr, raw)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("receipt %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

var randomStrings = []string{"", "a", "alice", "<b>&amp;", "é", "€", "😀", "\uffff", "\ue000", "\u2028", "line\nbreak",
	"tab\t", "quote\"", `back\slash`, "\x00\x1f\x7f", "\xff invalid", "sha256:00ff", "STEP_UP", "1e3"}

// fillRandom gives v a random value, exploring every field of structs.
func fillRandom(rng *rand.Rand, v reflect.Value, depth int) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		if rng.IntN(4) > 0 {
			v.Set(reflect.ValueOf(time.Unix(rng.Int64N(1<<34), rng.Int64N(1e9)).In(time.FixedZone("", 3600*(rng.IntN(25)-12)))))
		}
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(randomStrings[rng.IntN(len(randomStrings))])
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(randomInt(rng) >> (64 - v.Type().Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Type() == reflect.TypeFor[aarm.Verdict]() {
			v.SetUint(uint64(rng.IntN(5)))
			return
		}
		v.SetUint(uint64(randomInt(rng)) >> (64 - v.Type().Bits()))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(randomFloat(rng))
	case reflect.Pointer:
		if rng.IntN(3) > 0 && depth < 6 {
			p := reflect.New(v.Type().Elem())
			fillRandom(rng, p.Elem(), depth+1)
			v.Set(p)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillRandom(rng, v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if rng.IntN(4) == 0 || depth > 6 {
			return
		}
		n := rng.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fillRandom(rng, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if rng.IntN(4) == 0 || depth > 6 {
			return
		}
		m := reflect.MakeMap(v.Type())
		for range rng.IntN(5) {
			k := reflect.New(v.Type().Key()).Elem()
			fillRandom(rng, k, depth+1)
			e := reflect.New(v.Type().Elem()).Elem()
			fillRandom(rng, e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Interface:
		if depth > 8 {
			return
		}
		var x any
		switch rng.IntN(9) {
		case 0:
			x = nil
		case 1:
			x = rng.IntN(2) == 0
		case 2:
			x = randomFloat(rng)
		case 3:
			x = randomInt(rng)
		case 4:
			x = json.Number("1.50e+2")
		case 5:
			m := map[string]any{}
			fillRandom(rng, reflect.ValueOf(&m).Elem(), depth+1)
			x = m
		case 6:
			var s []any
			fillRandom(rng, reflect.ValueOf(&s).Elem(), depth+1)
			x = s
		default:
			x = randomStrings[rng.IntN(len(randomStrings))]
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	}
}

func randomInt(rng *rand.Rand) int64 {
	switch rng.IntN(4) {
	case 0:
		return int64(rng.Uint64())
	case 1:
		return rng.Int64N(1<<53) - 1<<52
	default:
		return rng.Int64N(1000) - 10
	}
}

func randomFloat(rng *rand.Rand) float64 {
	switch rng.IntN(4) {
	case 0:
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0.5
		}
		return f
	case 1:
		return math.Copysign(0, -1)
	default:
		return float64(rng.IntN(2000)-1000) / 8
	}
}

// A receipt that happens to contain the placeholders Append encodes with
// (its position member and time) is re-encoded, not spliced wrongly.
func TestPlaceholderCollision(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	mustAppend(t, l, sampleReceipt("s", "first", aarm.Allow))
	r := sampleReceipt("s", "a", aarm.Allow)
	r.Action.Parameters = map[string]any{
		"member": map[string]any{"index": 0, "prev_hash": l.placeholder},
		"time":   l.timePlaceholder,
	}
	pos := mustAppend(t, l, r)
	if pos.Index != 1 || r.Time.IsZero() || r.Time.Equal(l.timePlaceholder) {
		t.Fatalf("Append: got position %+v time %v", pos, r.Time)
	}
	c, err := CanonicalBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(c, l.placeholderMember) || !bytes.Contains(c, l.timePlaceholderJSON) {
		t.Fatalf("the test receipt does not contain the placeholders: %s", c)
	}
	stored, err := l.GetIndex(1)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Time.Equal(r.Time) || stored.Ledger != r.Ledger {
		t.Errorf("stored time %v position %+v, want %v %+v", stored.Time, stored.Ledger, r.Time, r.Ledger)
	}
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() || rep.Receipts != 2 {
		t.Fatalf("Verify: %v %s", err, rep)
	}
}
