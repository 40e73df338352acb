package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// buildLog writes n receipts, one group commit each, and closes the ledger.
func buildLog(t *testing.T, n int) (*badger.DB, testKey, string) {
	t.Helper()
	dir := t.TempDir()
	db := openDB(t, dir)
	k := newKey(t, "")
	l := openLedger(t, db, k)
	for i := range n {
		r := sampleReceipt(fmt.Sprint("s", i%3), fmt.Sprint("a", i), aarm.Deny)
		mustAppend(t, l, r)
	}
	l.Close()
	return db, k, dir
}

func rawEntry(t *testing.T, db *badger.DB, i uint64) []byte {
	t.Helper()
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		var err error
		v, err = getValue(txn, entryKey(i))
		return err
	})
	if err != nil {
		t.Fatalf("read entry %d: %v", i, err)
	}
	return v
}

func put(t *testing.T, db *badger.DB, k, v []byte) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }); err != nil {
		t.Fatal(err)
	}
}

func del(t *testing.T, db *badger.DB, keys ...[]byte) {
	t.Helper()
	err := db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// resign replaces receipt i's signature with one by attacker; keepKeyID
// leaves the original key id in place.
func resign(t *testing.T, db *badger.DB, i uint64, attacker testKey, keepKeyID bool) {
	t.Helper()
	var r aarm.Receipt
	if err := json.Unmarshal(rawEntry(t, db, i), &r); err != nil {
		t.Fatal(err)
	}
	r.Ledger.PrevHash = strings.Repeat("0", 64) // an edit the attacker wants to hide
	c, err := CanonicalBytes(&r)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := attacker.sv.SignMessage(bytes.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := attacker.sv.PublicKey()
	id, _ := KeyID(pub)
	if keepKeyID {
		id = r.Signature.KeyID
	}
	r.Signature = &aarm.Signature{Algorithm: AlgECDSAP256SHA256, KeyID: id, Value: base64.StdEncoding.EncodeToString(sig)}
	v, _ := json.Marshal(&r)
	put(t, db, entryKey(i), v)
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	const n = 10
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *badger.DB)
		index  uint64
		field  string
	}{
		{"untouched", func(*testing.T, *badger.DB) {}, 0, ""},
		{"flip a byte", func(t *testing.T, db *badger.DB) {
			v := rawEntry(t, db, 4)
			i := bytes.Index(v, []byte("alice")) + 2
			v[i] ^= 0x01
			put(t, db, entryKey(4), v)
		}, 4, "signature.value"},
		{"flip a key byte", func(t *testing.T, db *badger.DB) {
			v := rawEntry(t, db, 4)
			i := bytes.Index(v, []byte(`"human"`)) + 1
			v[i] = 'H'
			put(t, db, entryKey(4), v)
		}, 4, "signature.value"},
		{"delete one", func(t *testing.T, db *badger.DB) { del(t, db, entryKey(4)) }, 4, "receipt"},
		{"swap two", func(t *testing.T, db *badger.DB) {
			a, b := rawEntry(t, db, 3), rawEntry(t, db, 6)
			put(t, db, entryKey(3), b)
			put(t, db, entryKey(6), a)
		}, 3, "ledger.index"},
		{"truncate the tail", func(t *testing.T, db *badger.DB) {
			del(t, db, entryKey(7), entryKey(8), entryKey(9))
		}, 7, "receipt"},
		{"replace the signing key", func(t *testing.T, db *badger.DB) { resign(t, db, 5, newKey(t, ""), false) }, 5, "signature.key_id"},
		{"forge with the old key id", func(t *testing.T, db *badger.DB) { resign(t, db, 5, newKey(t, ""), true) }, 5, "signature.value"},
		{"edit a checkpoint", func(t *testing.T, db *badger.DB) {
			var note []byte
			_ = db.View(func(txn *badger.Txn) error {
				note, _ = getValue(txn, checkpointKey(6))
				return nil
			})
			lines := strings.SplitN(string(note), "\n", 4)
			h, _ := base64.StdEncoding.DecodeString(lines[2])
			h[0] ^= 0xff
			lines[2] = base64.StdEncoding.EncodeToString(h)
			put(t, db, checkpointKey(6), []byte(strings.Join(lines, "\n")))
		}, 5, "checkpoint"},
		{"re-sign a checkpoint with another key", func(t *testing.T, db *badger.DB) {
			k := newKey(t, "")
			pub, _ := k.sv.PublicKey()
			id, _ := KeyID(pub)
			l := openLedger(t, openDB(t, t.TempDir()), k)
			defer l.Close()
			cp, err := signCheckpoint(k.sv, id, cpBody("aarm.test/ledger", 3, make([]byte, 32)))
			if err != nil {
				t.Fatal(err)
			}
			put(t, db, checkpointKey(3), cp.Note)
		}, 2, "checkpoint"},
		{"drop an id index entry", func(t *testing.T, db *badger.DB) {
			var r aarm.Receipt
			_ = json.Unmarshal(rawEntry(t, db, 2), &r)
			del(t, db, idKey(r.ID))
		}, 2, "index.receipt_id"},
		{"drop a session index entry", func(t *testing.T, db *badger.DB) {
			del(t, db, valueKey(pfxSession, "s2", 2))
		}, 2, "index.session"},
		{"forge a session index entry", func(t *testing.T, db *badger.DB) {
			put(t, db, valueKey(pfxSession, "s-other", 2), nil)
		}, 2, "index.session"},
		{"edit a stored tree node", func(t *testing.T, db *badger.DB) {
			put(t, db, nodeKey(nodeID(1, 2)), make([]byte, 32))
		}, 4, "tree.node"},
		{"edit a tree node at the lowest stored level", func(t *testing.T, db *badger.DB) {
			h := make([]byte, 32)
			h[0] = 1
			put(t, db, nodeKey(nodeID(minStoredLevel, 1)), h)
		}, 1 << minStoredLevel, "tree.node"},
		{"a wrong stored leaf hash (logs written before minStoredLevel)", func(t *testing.T, db *badger.DB) {
			put(t, db, nodeKey(nodeID(0, 3)), make([]byte, 32))
		}, 3, "tree.leaf"},
		{"drop a tree node at the lowest stored level", func(t *testing.T, db *badger.DB) {
			del(t, db, nodeKey(nodeID(minStoredLevel, 1)))
		}, 1 << minStoredLevel, "tree.node"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db, k, _ := buildLog(t, n)
			defer db.Close()
			c.tamper(t, db)
			rep, err := Verify(t.Context(), db, [][]byte{k.pub})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			t.Logf("%s", rep)
			if c.field == "" {
				if !rep.OK() {
					t.Fatalf("untouched log: got %s, want OK", rep)
				}
				return
			}
			if rep.OK() {
				t.Fatalf("got OK, want a failure at index %d field %s", c.index, c.field)
			}
			if !hasFailure(rep, c.index, c.field) {
				t.Fatalf("got %s, want a failure at index %d field %s", rep, c.index, c.field)
			}
			if !errors.Is(rep.Err(), ErrCorrupt) {
				t.Errorf("Report.Err: got %v, want ErrCorrupt", rep.Err())
			}
		})
	}
}

func TestOpenRefusesTamperedLog(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *badger.DB)
	}{
		{"truncated", func(t *testing.T, db *badger.DB) { del(t, db, entryKey(4)) }},
		{"head receipt edited", func(t *testing.T, db *badger.DB) {
			v := rawEntry(t, db, 4)
			v[bytes.Index(v, []byte("alice"))] = 'A'
			put(t, db, entryKey(4), v)
		}},
		{"latest checkpoint edited", func(t *testing.T, db *badger.DB) {
			var note []byte
			_ = db.View(func(txn *badger.Txn) error {
				note, _ = getValue(txn, checkpointKey(5))
				return nil
			})
			put(t, db, checkpointKey(5), bytes.Replace(note, []byte("\n5\n"), []byte("\n4\n"), 1))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db, k, _ := buildLog(t, 5)
			defer db.Close()
			c.tamper(t, db)
			_, err := Open(context.Background(), db, Options{Signer: k.sv, Origin: "aarm.test/ledger", Logger: quietLogger()})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: got %v, want ErrCorrupt", err)
			}
		})
	}
}

// A crash between the parts of a split transaction leaves receipts that no
// checkpoint covers yet: Verify warns, Open verifies and seals them.
func TestOpenSealsUncoveredTail(t *testing.T) {
	t.Parallel()
	db, k, _ := buildLog(t, 5)
	defer db.Close()
	del(t, db, checkpointKey(4), checkpointKey(5))
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() || len(rep.Warnings) != 1 {
		t.Fatalf("Verify of an uncovered tail: got %v %s, want OK with one warning", err, rep)
	}
	l := openLedger(t, db, k)
	cp, _ := l.Checkpoint()
	l.Close()
	if cp.Size != 5 {
		t.Errorf("checkpoint after Open: got size %d, want 5", cp.Size)
	}
	rep, err = Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() || len(rep.Warnings) != 0 || rep.Size != 5 {
		t.Fatalf("Verify after Open: got %v %s, want OK at size 5 without warnings", err, rep)
	}
}

// A crash between the parts of a split transaction can also leave tail
// receipts without their id and index entries (they are written after the
// receipts of a batch): Open restores them along with the checkpoint.
func TestOpenRestoresTailIndexes(t *testing.T) {
	t.Parallel()
	db, k, _ := buildLog(t, 5)
	defer db.Close()
	var r aarm.Receipt
	if err := json.Unmarshal(rawEntry(t, db, 4), &r); err != nil {
		t.Fatal(err)
	}
	del(t, db, checkpointKey(5), idKey(r.ID), valueKey(pfxKind, "decision", 4), valueKey(pfxSession, "s1", 4),
		timeKey(timeBucket(r.Time.UnixNano()), 4))
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"index.receipt_id", "index.kind", "index.session", "index.time"} {
		if !hasFailure(rep, 4, field) {
			t.Errorf("Verify before Open: no %s failure at index 4 in %s", field, rep)
		}
	}
	l := openLedger(t, db, k)
	l.Close()
	rep, err = Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() || rep.Size != 5 {
		t.Fatalf("Verify after Open: got %v %s, want OK at size 5", err, rep)
	}
}

// Logs written before minStoredLevel store every tree node; they verify and
// serve proofs as before.
func TestLegacyStoredLowLevelNodes(t *testing.T) {
	t.Parallel()
	db, k, _ := buildLog(t, 11)
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error {
		rng := rangeFactory.NewEmptyRange(0)
		for i := range uint64(11) {
			leaf, err := leafFromEntry(txn, i)
			if err != nil {
				return err
			}
			if err := rng.Append(leaf, func(id compact.NodeID, h []byte) {
				if id.Level < minStoredLevel {
					_ = txn.Set(nodeKey(id), h)
				}
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(t.Context(), db, [][]byte{k.pub})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify: %v %s", err, rep)
	}
	l := openLedger(t, db, k)
	defer l.Close()
	for i := range uint64(11) {
		p, err := l.Proof(i)
		if err != nil {
			t.Fatalf("Proof(%d): %v", i, err)
		}
		if err := proof.VerifyInclusion(hasher, i, p.TreeSize, p.LeafHash, p.Hashes, rep.Root); err != nil {
			t.Errorf("Proof(%d) does not verify: %v", i, err)
		}
	}
}
