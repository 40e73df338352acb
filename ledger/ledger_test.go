package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/transparency-dev/merkle/proof"
)

func TestAppendGetListVerify(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{KeyECDSAP256, KeyEd25519} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			db := openDB(t, t.TempDir())
			defer db.Close()
			k := newKey(t, alg)
			l := openLedger(t, db, k)
			defer l.Close()

			var want []*aarm.Receipt
			verdicts := []aarm.Verdict{aarm.Allow, aarm.Deny, aarm.Modify, aarm.Allow}
			for i, v := range verdicts {
				r := sampleReceipt(fmt.Sprintf("s%d", i%2), fmt.Sprintf("a%d", i), v)
				pos := mustAppend(t, l, r)
				if pos.Index != uint64(i) {
					t.Fatalf("Append %d: got index %d, want %d", i, pos.Index, i)
				}
				if r.ID == "" || r.Signature == nil || r.Version != aarm.ReceiptVersion || r.Ledger != pos {
					t.Fatalf("Append did not fill the receipt: %+v", r)
				}
				want = append(want, r)
			}
			if got := l.Size(); got != 4 {
				t.Fatalf("Size: got %d, want 4", got)
			}
			got, err := l.Get(want[2].ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if diff := cmp.Diff(want[2], got); diff != "" {
				t.Errorf("Get mismatch (-want +got):\n%s", diff)
			}
			if _, err := l.Get("nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(nope): got %v, want ErrNotFound", err)
			}
			if _, err := l.GetIndex(99); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetIndex(99): got %v, want ErrNotFound", err)
			}

			ids := func(rs []*aarm.Receipt) []uint64 {
				var out []uint64
				for _, r := range rs {
					out = append(out, r.Ledger.Index)
				}
				return out
			}
			t0 := want[0].Time
			cases := []struct {
				name string
				q    Query
				want []uint64
			}{
				{"all", Query{}, []uint64{0, 1, 2, 3}},
				{"session", Query{Session: "s1"}, []uint64{1, 3}},
				{"session reverse", Query{Session: "s0", Reverse: true}, []uint64{2, 0}},
				{"verdict", Query{Verdict: "allow"}, []uint64{0, 3}},
				{"action", Query{ActionID: "a2"}, []uint64{2}},
				{"kind", Query{Kind: "decision", Limit: 2}, []uint64{0, 1}},
				{"kind none", Query{Kind: "outcome"}, nil},
				{"after", Query{After: 1}, []uint64{2, 3}},
				{"after reverse", Query{After: 2, Reverse: true}, []uint64{1, 0}},
				{"session after", Query{Session: "s1", After: 1}, []uint64{3}},
				{"since", Query{Since: t0}, []uint64{0, 1, 2, 3}},
				{"until", Query{Until: t0}, nil},
				{"since reverse limit", Query{Since: t0, Reverse: true, Limit: 1}, []uint64{3}},
				{"verdict and session", Query{Verdict: "ALLOW", Session: "s1"}, []uint64{3}},
			}
			for _, c := range cases {
				rs, err := l.List(c.q)
				if err != nil {
					t.Fatalf("%s: List: %v", c.name, err)
				}
				if diff := cmp.Diff(c.want, ids(rs)); diff != "" {
					t.Errorf("%s: List indexes (-want +got):\n%s", c.name, diff)
				}
			}
			if _, err := l.List(Query{Verdict: "maybe"}); err == nil {
				t.Errorf("List with a bad verdict: got nil error")
			}

			rep, err := Verify(t.Context(), db, [][]byte{k.pub})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !rep.OK() || rep.Receipts != 4 || rep.Size != 4 {
				t.Fatalf("Verify: got %s, want OK with 4 receipts", rep)
			}
		})
	}
}

func TestCanonicalBytesMatchStoredForm(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	r := sampleReceipt("s", "a", aarm.Allow)
	mustAppend(t, l, r)
	c, err := CanonicalBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.View(func(txn *badger.Txn) error {
		raw, err = getValue(txn, entryKey(0))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s, field, err := parseStored(raw)
	if err != nil {
		t.Fatalf("parseStored: %s: %v", field, err)
	}
	if !bytes.Equal(c, s.canonical) {
		t.Fatalf("canonical bytes differ:\nstruct %s\nstored %s", c, s.canonical)
	}
	if bytes.Contains(c, []byte(`"signature"`)) {
		t.Errorf("canonical bytes contain the signature: %s", c)
	}
	if !bytes.Contains(c, []byte(`"title":"bug <b>&"`)) {
		t.Errorf("canonical bytes escape HTML characters (RFC 8785 does not): %s", c)
	}
}

func TestProofs(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	var leaves [][]byte
	roots := map[uint64][]byte{}
	for i := range 21 {
		r := sampleReceipt("s", fmt.Sprint(i), aarm.Deny)
		mustAppend(t, l, r)
		c, err := CanonicalBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, LeafHash(c))
		cp, _ := l.Checkpoint()
		if cp.Size != uint64(i+1) {
			t.Fatalf("checkpoint size: got %d, want %d", cp.Size, i+1)
		}
		roots[cp.Size] = cp.Hash
	}
	for size := uint64(1); size <= 21; size++ {
		for i := uint64(0); i < size; i++ {
			p, err := l.InclusionProof(i, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d,%d): %v", i, size, err)
			}
			if err := proof.VerifyInclusion(hasher, i, size, leaves[i], p, roots[size]); err != nil {
				t.Fatalf("VerifyInclusion(%d,%d): %v", i, size, err)
			}
		}
		for s1 := uint64(1); s1 <= size; s1++ {
			p, err := l.ConsistencyProof(s1, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d,%d): %v", s1, size, err)
			}
			if err := proof.VerifyConsistency(hasher, s1, size, p, roots[s1], roots[size]); err != nil {
				t.Fatalf("VerifyConsistency(%d,%d): %v", s1, size, err)
			}
		}
	}
	if _, err := l.InclusionProof(5, 22); !errors.Is(err, ErrBadRange) {
		t.Errorf("InclusionProof beyond the log: got %v, want ErrBadRange", err)
	}
	if _, err := l.ConsistencyProof(5, 4); !errors.Is(err, ErrBadRange) {
		t.Errorf("ConsistencyProof(5,4): got %v, want ErrBadRange", err)
	}
	cp, _ := l.Checkpoint()
	pr, err := l.Proof(7)
	if err != nil {
		t.Fatalf("Proof: %v", err)
	}
	if pr.TreeSize != 21 || !bytes.Equal(pr.LeafHash, leaves[7]) || pr.Checkpoint != string(cp.Note) {
		t.Errorf("Proof: got %+v", pr)
	}
	if err := proof.VerifyInclusion(hasher, 7, pr.TreeSize, pr.LeafHash, pr.Hashes, roots[21]); err != nil {
		t.Errorf("Proof does not verify: %v", err)
	}
	if _, err := l.Proof(21); !errors.Is(err, ErrBadRange) {
		t.Errorf("Proof(21): got %v, want ErrBadRange", err)
	}
	got, err := VerifyCheckpoint(cp.Note, [][]byte{k.pub})
	if err != nil {
		t.Fatalf("VerifyCheckpoint: %v", err)
	}
	if got.Size != 21 || !bytes.Equal(got.Hash, roots[21]) || got.Origin != "aarm.test/ledger" {
		t.Errorf("VerifyCheckpoint: got %+v", got)
	}
	other := newKey(t, "")
	if _, err := VerifyCheckpoint(cp.Note, [][]byte{other.pub}); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("VerifyCheckpoint with another key: got %v, want ErrBadCheckpoint", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	const writers, each = 32, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]string{}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := sampleReceipt(fmt.Sprint("s", w), fmt.Sprintf("a%d-%d", w, i), aarm.Allow)
				r.Kind = aarm.KindOutcome
				pos, err := l.Append(context.Background(), r)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := seen[pos.Index]; dup {
					t.Errorf("index %d given to %s and %s", pos.Index, prev, r.ID)
				}
				seen[pos.Index] = r.ID
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l.Close()
	if _, err := l.Append(context.Background(), sampleReceipt("s", "a", aarm.Allow)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	if len(seen) != writers*each {
		t.Fatalf("got %d distinct indexes, want %d", len(seen), writers*each)
	}
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify: %v %s", err, rep)
	}
	if rep.Receipts != writers*each {
		t.Errorf("Verify read %d receipts, want %d", rep.Receipts, writers*each)
	}
}

func TestAppendRejects(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	bad := sampleReceipt("s", "a", aarm.Allow)
	bad.Kind = "whatever"
	if _, err := l.Append(t.Context(), bad); !errors.Is(err, ErrInvalidReceipt) {
		t.Errorf("unknown kind: got %v, want ErrInvalidReceipt", err)
	}
	r := sampleReceipt("s", "a", aarm.Allow)
	r.ID = "fixed-id"
	mustAppend(t, l, r)
	dup := sampleReceipt("s", "b", aarm.Allow)
	dup.ID = "fixed-id"
	if _, err := l.Append(t.Context(), dup); !errors.Is(err, ErrInvalidReceipt) {
		t.Errorf("duplicate id: got %v, want ErrInvalidReceipt", err)
	}
	// A rejected receipt does not stop the ledger.
	mustAppend(t, l, sampleReceipt("s", "c", aarm.Allow))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Append(ctx, sampleReceipt("s", "d", aarm.Allow)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: got %v, want context.Canceled", err)
	}
}

func TestOpenRequiresSyncWrites(t *testing.T) {
	t.Parallel()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithSyncWrites(false).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(t.Context(), db, Options{Signer: newKey(t, "").sv})
	if !errors.Is(err, ErrNotDurable) {
		t.Fatalf("Open without SyncWrites: got %v, want ErrNotDurable", err)
	}
}

func TestRecoveryReceiptsInFlightActions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := openDB(t, dir)
	k := newKey(t, "")
	l := openLedger(t, db, k)
	mustAppend(t, l, sampleReceipt("s", "forwarded", aarm.Allow))
	mustAppend(t, l, sampleReceipt("s", "modified", aarm.Modify))
	mustAppend(t, l, sampleReceipt("s", "denied", aarm.Deny))
	mustAppend(t, l, sampleReceipt("s", "done", aarm.Allow))
	out := sampleReceipt("s", "done", aarm.Allow)
	out.Kind, out.Execution = aarm.KindOutcome, &aarm.Execution{Status: "forwarded", StatusCode: 200}
	mustAppend(t, l, out)
	held := sampleReceipt("s", "held", aarm.StepUp)
	mustAppend(t, l, held)
	appr := sampleReceipt("s", "held", aarm.StepUp)
	appr.Kind, appr.Decision = aarm.KindApproval, nil
	appr.Approval = &aarm.Approval{Approver: "bob", Decision: aarm.Allow, Time: time.Now()}
	mustAppend(t, l, appr)
	l.Close()
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	l = openLedger(t, db, k)
	defer l.Close()
	rs, err := l.List(Query{Kind: "outcome", After: 6})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rs {
		if r.Execution == nil {
			t.Fatalf("recovery outcome without execution: %+v", r)
		}
		got[r.Action.ID] = r.Execution.Status + "/" + r.Execution.Error
		if r.Requester.Human != "alice" || r.Requester.Session != "s" {
			t.Errorf("recovery outcome lost the requester: %+v", r.Requester)
		}
	}
	want := map[string]string{"forwarded": "unknown/process restart", "modified": "unknown/process restart", "held": "unknown/process restart"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recovery outcomes (-want +got):\n%s", diff)
	}
	// A second restart has nothing left in flight.
	size := l.Size()
	l.Close()
	l = openLedger(t, db, k)
	if l.Size() != size {
		t.Errorf("second restart appended: size %d, want %d", l.Size(), size)
	}
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify: %v %s", err, rep)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	k1, k2 := newKey(t, KeyECDSAP256), newKey(t, KeyEd25519)
	l := openLedger(t, db, k1)
	mustAppend(t, l, sampleReceipt("s", "a", aarm.Allow))
	l.Close()
	if _, err := Open(t.Context(), db, Options{Signer: k2.sv, Origin: "aarm.test/ledger", Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a new key but without the old public key: got %v, want ErrCorrupt", err)
	}
	l = openLedger(t, db, k2, k1.pub)
	r := sampleReceipt("s", "b", aarm.Deny)
	mustAppend(t, l, r)
	l.Close()
	if r.Signature.Algorithm != AlgEd25519 {
		t.Errorf("algorithm after rotation: got %q, want %q", r.Signature.Algorithm, AlgEd25519)
	}
	rep, err := Verify(t.Context(), db, [][]byte{k1.pub, k2.pub})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify with both keys: %v %s", err, rep)
	}
	rep, err = Verify(t.Context(), db, [][]byte{k2.pub})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !hasFailure(rep, 0, "signature.key_id") {
		t.Errorf("Verify without the old key: got %s, want a key_id failure at index 0", rep)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	if _, _, err := GenerateSigningKey("rsa"); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("GenerateSigningKey(rsa): got %v, want ErrUnsupportedKey", err)
	}
	k := newKey(t, "")
	v, id, err := LoadVerifier(k.pub)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := k.sv.PublicKey()
	want, _ := KeyID(pub)
	if id != want || len(id) != 64 {
		t.Errorf("LoadVerifier key id: got %q, want %q", id, want)
	}
	sig, _ := k.sv.SignMessage(bytes.NewReader([]byte("m")))
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader([]byte("m"))); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := LoadSigner(k.pub); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("LoadSigner(public key): got %v, want ErrUnsupportedKey", err)
	}
	if _, _, err := LoadVerifier(k.priv); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("LoadVerifier(private key): got %v, want ErrUnsupportedKey", err)
	}
}

func TestReceiptIDsAreTimeOrderedUUIDv7(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	a, _ := newReceiptID(now)
	b, _ := newReceiptID(now.Add(time.Millisecond))
	if !(a < b) || len(a) != 36 || a[14] != '7' {
		t.Errorf("ids %q, %q: want time-ordered UUIDv7", a, b)
	}
}

func TestWriteFailureFailsClosed(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	mustAppend(t, l, sampleReceipt("s", "a", aarm.Allow))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := l.Append(t.Context(), sampleReceipt("s", "b", aarm.Allow))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append on a closed store: got %v, want ErrUnavailable", err)
	}
	_, err = l.Append(t.Context(), sampleReceipt("s", "c", aarm.Allow))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append after a failed write: got %v, want ErrUnavailable", err)
	}
	if l.Size() != 1 {
		t.Errorf("Size after failed writes: got %d, want 1", l.Size())
	}
}

func TestOversizedBatchIsSplit(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	l.maxBatchBytes = 64 << 10 // read by the writer only after the first Append
	big := strings.Repeat("x", 20<<10)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r := sampleReceipt("s", fmt.Sprint("big", i), aarm.Deny)
			r.Action.Parameters = map[string]any{"blob": big}
			if _, err := l.Append(t.Context(), r); err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	l.Close()
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() || rep.Receipts != 40 {
		t.Fatalf("Verify: %v %s", err, rep)
	}
}

func TestVerifyReadOnlyStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := openDB(t, dir)
	k := newKey(t, "")
	l := openLedger(t, db, k)
	for i := range 5 {
		mustAppend(t, l, sampleReceipt("s", fmt.Sprint(i), aarm.Deny))
	}
	l.Close()
	db.Close()
	ro, err := badger.Open(badger.DefaultOptions(dir).WithReadOnly(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := Verify(t.Context(), ro, [][]byte{k.pub})
	if err != nil || !rep.OK() || rep.Receipts != 5 {
		t.Fatalf("Verify(read-only): %v %s", err, rep)
	}
}

func TestCloseWhileAppending(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	var wg sync.WaitGroup
	var ok, closed sync.Map
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := sampleReceipt("s", fmt.Sprintf("%d-%d", w, i), aarm.Deny)
				pos, err := l.Append(t.Context(), r)
				if errors.Is(err, ErrClosed) {
					closed.Store(w, true)
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				ok.Store(pos.Index, r.ID)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	l.Close()
	wg.Wait()
	// Every Append that returned success is in the log.
	l = openLedger(t, db, k)
	defer l.Close()
	ok.Range(func(i, id any) bool {
		r, err := l.GetIndex(i.(uint64))
		if err != nil || r.ID != id.(string) {
			t.Errorf("acknowledged index %v: got %v %v", i, r, err)
		}
		return true
	})
}

// A batch bigger than one Badger transaction is written in several commits
// (receipts first, the checkpoint last) and verifies.
func TestTxnTooBigIsSplit(t *testing.T) {
	t.Parallel()
	opts := badger.DefaultOptions(t.TempDir()).WithSyncWrites(true).WithLogger(nil).
		WithMemTableSize(256 << 10).WithValueThreshold(32 << 10)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	big := strings.Repeat("y", 20<<10)
	var wg sync.WaitGroup
	for i := range 48 {
		wg.Go(func() {
			r := sampleReceipt(fmt.Sprint("s", i%4), fmt.Sprint("big", i), aarm.Allow)
			r.Action.Parameters = map[string]any{"blob": big}
			if _, err := l.Append(t.Context(), r); err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	l.Close()
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() || rep.Receipts != 48 || len(rep.Warnings) != 0 {
		t.Fatalf("Verify: %v %s", err, rep)
	}
}
