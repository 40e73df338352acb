package ledger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
)

// TestIndexPostings appends concurrently, so that group commits share
// index entries (posting lists), and checks every query shape against a
// filter over the whole log.
func TestIndexPostings(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	const writers, each = 24, 8
	verdicts := []aarm.Verdict{aarm.Allow, aarm.Deny, aarm.StepUp}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := sampleReceipt(fmt.Sprint("s", w%3), fmt.Sprint("a", (w*each+i)%5), verdicts[(w+i)%3])
				if i%2 == 1 {
					r.Kind = aarm.KindOutcome
					r.Decision = nil
				}
				if _, err := l.Append(context.Background(), r); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	// Some entries must list more than one receipt, or this test tests
	// nothing new.
	for _, p := range []string{pfxKind, pfxTime} {
		shared := 0
		if err := db.View(func(txn *badger.Txn) error {
			return iterate(txn, p, true, func(_, v []byte) error {
				if len(v) > 0 {
					shared++
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if shared == 0 {
			t.Fatalf("no %s index entry lists more than one receipt", p)
		}
	}

	all, err := l.List(Query{})
	if err != nil || len(all) != writers*each {
		t.Fatalf("List all: got %d receipts, %v; want %d", len(all), err, writers*each)
	}
	index := func(rs []*aarm.Receipt) []uint64 {
		var out []uint64
		for _, r := range rs {
			out = append(out, r.Ledger.Index)
		}
		return out
	}
	var queries []Query
	for _, base := range []Query{
		{Session: "s1"}, {ActionID: "a3"}, {Verdict: "deny"}, {Kind: "outcome"}, {Kind: "decision", Verdict: "STEP_UP"},
		{Session: "s2", Kind: "decision"}, {Session: "nope"}, {Since: time.Unix(0, 1)},
	} {
		for _, after := range []uint64{0, 1, 17, 100, 191, 500} {
			for _, limit := range []int{0, 1, 7} {
				for _, rev := range []bool{false, true} {
					q := base
					q.After, q.Limit, q.Reverse = after, limit, rev
					queries = append(queries, q)
				}
			}
		}
	}
	for _, q := range queries {
		want := wantList(all, q)
		got, err := l.List(q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		if diff := cmp.Diff(index(want), index(got)); diff != "" {
			t.Errorf("List(%+v) indexes (-want +got):\n%s", q, diff)
		}
	}
	// Time windows: the time index lists receipts by millisecond, in log
	// order within one, so compare sets.
	times := []time.Time{{}, all[3].Time, all[50].Time, all[50].Time.Add(time.Nanosecond), all[120].Time, all[len(all)-1].Time.Add(time.Millisecond)}
	for _, since := range times {
		for _, until := range times {
			for _, rev := range []bool{false, true} {
				q := Query{Since: since, Until: until, Reverse: rev}
				if since.IsZero() && until.IsZero() {
					continue
				}
				got, err := l.List(q)
				if err != nil {
					t.Fatalf("List(%+v): %v", q, err)
				}
				g, w := index(got), index(wantList(all, q))
				slices.Sort(g)
				slices.Sort(w)
				if diff := cmp.Diff(w, g); diff != "" {
					t.Errorf("List(since %v, until %v, reverse %v) indexes (-want +got):\n%s", since, until, rev, diff)
				}
			}
		}
	}
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify: %v %s", err, rep)
	}

	// Dropping a shared entry loses every receipt it listed.
	var key, value []byte
	_ = db.View(func(txn *badger.Txn) error {
		return iterate(txn, pfxKind, true, func(k, v []byte) error {
			if key == nil && len(v) > 0 {
				key, value = k, v
			}
			return nil
		})
	})
	lost, _ := postings(key, value)
	del(t, db, key)
	rep, err = Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range lost {
		if !hasFailure(rep, i, "index.kind") {
			t.Errorf("dropped kind entry listing %v: no index.kind failure at %d in %s", lost, i, rep)
		}
	}
	// A malformed list is a finding, not a crash.
	put(t, db, key, []byte{1, 2, 3})
	rep, err = Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || rep.OK() {
		t.Fatalf("Verify with a malformed entry: got %v %s, want a failure", err, rep)
	}
}

// wantList filters all (in log order) as List should answer q.
func wantList(all []*aarm.Receipt, q Query) []*aarm.Receipt {
	if q.Verdict != "" {
		v, _ := aarm.ParseVerdict(q.Verdict)
		q.Verdict = v.String()
	}
	rs := slices.Clone(all)
	if q.Reverse {
		slices.Reverse(rs)
	}
	var out []*aarm.Receipt
	for _, r := range rs {
		i := r.Ledger.Index
		if q.After > 0 && ((!q.Reverse && i <= q.After) || (q.Reverse && i >= q.After)) {
			continue
		}
		if !matches(q, r) {
			continue
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out
}
