package ledger

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/aarmproxy/aarm"
	"github.com/gowebpki/jcs"
)

// fuzzSeeds returns a real bundle, checkpoint and public key.
func fuzzSeeds(f *testing.F) (bundle, note, pub []byte) {
	f.Helper()
	db := openDB(f, f.TempDir())
	defer db.Close()
	k := newKey(f, KeyEd25519)
	l := openLedger(f, db, k)
	defer l.Close()
	for _, s := range []string{"a", "b", "c"} {
		mustAppend(f, l, sampleReceipt("s-"+s, s, aarm.Allow))
	}
	var b bytes.Buffer
	if err := l.Export(f.Context(), &b, Query{}); err != nil {
		f.Fatal(err)
	}
	cp, _ := l.Checkpoint()
	return b.Bytes(), cp.Note, k.pub
}

// FuzzVerifyBundle: bundles come from anywhere; verification must never
// panic and must never pass a bundle that differs from a genuine one
// unless the difference is outside the signed bytes.
func FuzzVerifyBundle(f *testing.F) {
	bundle, _, pub := fuzzSeeds(f)
	f.Add(bundle)
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"bundle":"aarm.bundle/v1","checkpoint":""}` + "\n"))
	keys := [][]byte{pub}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := VerifyBundle(bytes.NewReader(b), keys)
		if err != nil {
			return
		}
		if rep.OK() && rep.Receipts > 0 && rep.Size == 0 {
			t.Fatalf("bundle with %d receipts verified against an empty tree", rep.Receipts)
		}
	})
}

// FuzzVerifyCheckpoint: a note that verifies must be the genuine one, up to
// the bytes the signature does not cover.
func FuzzVerifyCheckpoint(f *testing.F) {
	_, note, pub := fuzzSeeds(f)
	f.Add(note)
	f.Add([]byte("origin\n1\nAAAA\n\n\u2014 origin AAAAAAAA\n"))
	ring, err := newKeyRing([][]byte{pub})
	if err != nil {
		f.Fatal(err)
	}
	genuine, err := ring.verifyCheckpoint(note)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ring.verifyCheckpoint(b)
		if err != nil {
			return
		}
		if cp.Size != genuine.Size || !bytes.Equal(cp.Hash, genuine.Hash) || cp.Origin != genuine.Origin {
			t.Fatalf("forged checkpoint verified: %+v", cp)
		}
	})
}

// FuzzParseStored: stored receipts and bundle lines are decoded by
// parseStored; it must not panic and must reject what it cannot canonicalise.
func FuzzParseStored(f *testing.F) {
	bundle, _, _ := fuzzSeeds(f)
	for _, ln := range bytes.Split(bundle, []byte("\n")) {
		f.Add(ln)
	}
	f.Add([]byte(`{"signature":{},"signature":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _, err := parseStored(b)
		if err == nil && (s == nil || s.r.Signature == nil || len(s.leaf) != 32) {
			t.Fatalf("parseStored accepted %q without a signature or leaf", b)
		}
	})
}

// FuzzCanonicalBytes: for any receipt (decoded from fuzzed JSON, so that
// parameters hold arbitrary values), CanonicalBytes equals the reference
// jcs.Transform of its encoding/json form, or both fail.
func FuzzCanonicalBytes(f *testing.F) {
	bundle, _, _ := fuzzSeeds(f)
	for _, ln := range bytes.Split(bundle, []byte("\n")) {
		f.Add(ln)
	}
	f.Add([]byte(`{"action":{"parameters":{"b":[1e21,-0,0.1,"\u2028",{"\ud83d\ude00":null,"\ufb33":true}],"a":"<&>"}},"ledger":{"index":9007199254740993}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r aarm.Receipt
		if json.Unmarshal(b, &r) != nil {
			return
		}
		got, err := CanonicalBytes(&r)
		c := r
		c.Signature = nil
		raw, merr := json.Marshal(&c)
		if merr != nil {
			if err == nil {
				t.Fatalf("CanonicalBytes succeeded where json.Marshal failed: %v", merr)
			}
			return
		}
		want, werr := jcs.Transform(raw)
		if (err != nil) != (werr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("CanonicalBytes = %q, %v\njcs          = %q, %v", got, err, want, werr)
		}
	})
}
