package ledger

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aarmproxy/aarm"
)

func exportBundle(t *testing.T, l *Ledger, q Query) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := l.Export(t.Context(), &b, q); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return b.Bytes()
}

func TestExportVerifyBundle(t *testing.T) {
	t.Parallel()
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := newKey(t, "")
	l := openLedger(t, db, k)
	defer l.Close()
	for i := range 9 {
		v := aarm.Allow
		if i%3 == 0 {
			v = aarm.Deny
		}
		mustAppend(t, l, sampleReceipt([]string{"alice-1", "bob-1"}[i%2], string(rune('a'+i)), v))
	}
	full := exportBundle(t, l, Query{})
	partial := exportBundle(t, l, Query{Session: "bob-1"})
	empty := exportBundle(t, l, Query{Session: "nobody"})
	lines := func(b []byte) []string { return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n") }
	if got := len(lines(full)); got != 10 {
		t.Fatalf("full bundle: got %d lines, want 9 receipts and a trailer", got)
	}
	if got := len(lines(partial)); got != 5 {
		t.Fatalf("partial bundle: got %d lines, want 4 receipts and a trailer", got)
	}
	edit := func(b []byte, f func([]string) []string) []byte {
		return []byte(strings.Join(f(lines(b)), ""))
	}
	other := newKey(t, "")
	cases := []struct {
		name   string
		bundle []byte
		keys   [][]byte
		index  uint64
		field  string // "" means the bundle must verify
	}{
		{"full", full, [][]byte{k.pub}, 0, ""},
		{"partial with proofs", partial, [][]byte{k.pub}, 0, ""},
		{"empty partial", empty, [][]byte{k.pub}, 0, ""},
		{"complete flag cleared", edit(full, func(ls []string) []string {
			ls[9] = strings.Replace(ls[9], `"complete":true`, `"complete":false`, 1)
			return ls
		}), [][]byte{k.pub}, 0, "inclusion_proof"},
		{"wrong key", full, [][]byte{other.pub}, 0, "signature.key_id"},
		{"flip a byte", edit(full, func(ls []string) []string {
			ls[3] = strings.Replace(ls[3], "alice", "alicf", 1)
			return ls
		}), [][]byte{k.pub}, 3, "signature.value"},
		{"delete a line", edit(full, func(ls []string) []string {
			return append(ls[:4:4], ls[5:]...)
		}), [][]byte{k.pub}, 4, "receipt"},
		{"swap two lines", edit(full, func(ls []string) []string {
			ls[2], ls[6] = ls[6], ls[2]
			return ls
		}), [][]byte{k.pub}, 2, "ledger.index"},
		{"truncate the tail", edit(full, func(ls []string) []string {
			return append(ls[:7:7], ls[9])
		}), [][]byte{k.pub}, 7, "receipt"},
		{"partial: delete a proof", edit(partial, func(ls []string) []string {
			ls[4] = strings.Replace(ls[4], `{"index":3,`, `{"index":99,`, 1)
			return ls
		}), [][]byte{k.pub}, 3, "inclusion_proof"},
		{"no trailer", edit(full, func(ls []string) []string { return ls[:9] }), [][]byte{k.pub}, 0, "bundle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rep, err := VerifyBundle(bytes.NewReader(c.bundle), c.keys)
			if err != nil {
				t.Fatalf("VerifyBundle: %v", err)
			}
			t.Logf("%s", rep)
			if c.field == "" {
				if !rep.OK() {
					t.Fatalf("got %s, want OK", rep)
				}
				return
			}
			if !hasFailure(rep, c.index, c.field) {
				t.Fatalf("got %s, want a failure at index %d field %s", rep, c.index, c.field)
			}
		})
	}
}
