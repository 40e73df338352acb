package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// maxFailures bounds a Report's list; further failures are only counted.
const maxFailures = 1000

// Failure is one verification finding: where (log index, receipt id, and
// for bundles the line) and what (the field and the problem).
type Failure struct {
	Index     uint64 `json:"index"`
	ReceiptID string `json:"receipt_id,omitempty"`
	// Line is the 1-based bundle line, 0 for a store.
	Line int `json:"line,omitempty"`
	// Field names the failing part: a receipt field ("signature.value",
	// "ledger.prev_hash"), "receipt" (missing or undecodable), "checkpoint",
	// "tree.*" for stored tree nodes or "index.*" for secondary indexes.
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// String renders the failure on one line.
func (f Failure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "index %d", f.Index)
	if f.ReceiptID != "" {
		fmt.Fprintf(&b, " receipt %s", f.ReceiptID)
	}
	if f.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", f.Line)
	}
	fmt.Fprintf(&b, ": %s: %s", f.Field, f.Problem)
	return b.String()
}

// Report is the result of Verify or VerifyBundle. Verification passed when
// Failures is empty.
type Report struct {
	// Receipts is how many receipts were read.
	Receipts uint64 `json:"receipts"`
	// Checkpoints is how many checkpoints were checked.
	Checkpoints int `json:"checkpoints"`
	// Size and Root are the tree size and root hash of the latest valid
	// checkpoint.
	Size uint64 `json:"size"`
	Root []byte `json:"root"`
	// Failures lists every problem found (up to 1000; Omitted counts more).
	Failures []Failure `json:"failures,omitempty"`
	Omitted  int       `json:"omitted,omitempty"`
	// Warnings are findings that do not break verification.
	Warnings []string `json:"warnings,omitempty"`
}

// OK reports whether verification found no failure.
func (r *Report) OK() bool { return len(r.Failures) == 0 && r.Omitted == 0 }

// Err returns nil when the report is OK, otherwise an error wrapping
// ErrCorrupt that names the first failure.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %d problem(s); first: %s", ErrCorrupt, len(r.Failures)+r.Omitted, r.Failures[0])
}

// String renders the report for people, one finding a line.
func (r *Report) String() string {
	var b strings.Builder
	if r.OK() {
		fmt.Fprintf(&b, "OK: %d receipts, %d checkpoints, tree size %d root %x\n", r.Receipts, r.Checkpoints, r.Size, r.Root)
	} else {
		fmt.Fprintf(&b, "FAILED: %d problem(s) in %d receipts, %d checkpoints\n", len(r.Failures)+r.Omitted, r.Receipts, r.Checkpoints)
	}
	for _, f := range r.Failures {
		b.WriteString("  " + f.String() + "\n")
	}
	if r.Omitted > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", r.Omitted)
	}
	for _, w := range r.Warnings {
		b.WriteString("  warning: " + w + "\n")
	}
	return b.String()
}

// sort orders failures by index, keeping discovery order within an index.
func (r *Report) sort() {
	sort.SliceStable(r.Failures, func(i, j int) bool { return r.Failures[i].Index < r.Failures[j].Index })
}

func (r *Report) fail(f Failure) {
	if len(r.Failures) >= maxFailures {
		r.Omitted++
		return
	}
	r.Failures = append(r.Failures, f)
}

// Verify checks a whole store offline, needing only the public keys (PKIX
// PEM; every key that ever signed, for rotated logs): each receipt's
// signature, key id and algorithm, its index and prev_hash chain, the stored
// tree nodes, the Merkle root against every stored checkpoint (each of which
// must carry a valid signature), and that the id and secondary indexes agree
// with the receipts. It reads one snapshot and never writes. The error is
// for failures to run (bad keys, I/O); findings are in the Report.
func Verify(ctx context.Context, db *badger.DB, pubKeys [][]byte) (*Report, error) {
	ring, err := newKeyRing(pubKeys)
	if err != nil {
		return nil, err
	}
	if len(ring) == 0 {
		return nil, errors.New("ledger: Verify needs at least one public key")
	}
	rep := &Report{}
	err = db.View(func(txn *badger.Txn) error {
		return verifyStore(ctx, txn, ring, rep)
	})
	rep.sort()
	return rep, err
}

func verifyStore(ctx context.Context, txn *badger.Txn, ring keyRing, rep *Report) error {
	// Checkpoints first, so the tree pass can compare roots as it goes.
	cps := map[uint64]*SignedCheckpoint{}
	var maxCP uint64
	haveCP := false
	err := iterate(txn, pfxCheckpoint, true, func(k, v []byte) error {
		rep.Checkpoints++
		if len(k) != len(pfxCheckpoint)+8 {
			rep.fail(Failure{Field: "checkpoint", Problem: fmt.Sprintf("malformed key %q", k)})
			return nil
		}
		size := binary.BigEndian.Uint64(k[len(pfxCheckpoint):])
		cp, err := ring.verifyCheckpoint(v)
		if err != nil {
			rep.fail(Failure{Index: lastIndex(size), Field: "checkpoint", Problem: fmt.Sprintf("checkpoint for tree size %d: %v", size, err)})
			return nil
		}
		if cp.Size != size {
			rep.fail(Failure{Index: lastIndex(size), Field: "checkpoint", Problem: fmt.Sprintf("stored for tree size %d but says %d", size, cp.Size)})
			return nil
		}
		cps[size] = cp
		if !haveCP || size > maxCP {
			maxCP, haveCP = size, true
			rep.Size, rep.Root = cp.Size, cp.Hash
		}
		return nil
	})
	if err != nil {
		return err
	}
	if cp, ok := cps[0]; ok && !bytes.Equal(cp.Hash, hasher.EmptyRoot()) {
		rep.fail(Failure{Index: 0, Field: "checkpoint", Problem: "checkpoint for tree size 0 does not commit to the empty tree"})
	}

	rng := rangeFactory.NewEmptyRange(0)
	var (
		next     uint64 // the index expected next
		prevLeaf []byte // leaf hash of receipt next-1; nil when unknown
		clean    = true // no failure so far: stored tree nodes are compared
		fields   []*receiptFields
		ids      []string
	)
	checkRoot := func(size uint64) {
		cp, ok := cps[size]
		if !ok {
			return
		}
		root, _ := rng.GetRootHash(nil)
		if size == 0 {
			root = hasher.EmptyRoot()
		}
		if !bytes.Equal(root, cp.Hash) {
			rep.fail(Failure{Index: lastIndex(size), Field: "checkpoint", Problem: fmt.Sprintf("root hash of checkpoint for tree size %d does not match receipts 0..%d", size, size-1)})
		}
	}
	visit := func(id compact.NodeID, h []byte) {
		if !clean || id.Level == 0 {
			return
		}
		stored, err := getValue(txn, nodeKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) && id.Level < minStoredLevel {
			return // computed from the receipts when needed
		}
		if err != nil || !bytes.Equal(stored, h) {
			first := id.Index << id.Level
			rep.fail(Failure{Index: first, Field: "tree.node", Problem: fmt.Sprintf("stored tree node level %d index %d is missing or wrong", id.Level, id.Index)})
			clean = false
		}
	}
	err = iterate(txn, pfxEntry, true, func(k, raw []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(k) != len(pfxEntry)+8 {
			rep.fail(Failure{Index: next, Field: "receipt", Problem: fmt.Sprintf("malformed log key %q", k)})
			clean = false
			return nil
		}
		i := binary.BigEndian.Uint64(k[len(pfxEntry):])
		for ; next < i; next++ {
			rep.fail(Failure{Index: next, Field: "receipt", Problem: "missing from the log"})
			clean, prevLeaf = false, nil
			_ = rng.Append(make([]byte, 32), nil)
			fields, ids = append(fields, nil), append(ids, "")
			checkRoot(next + 1)
		}
		rep.Receipts++
		s, field, err := parseStored(raw)
		var leaf []byte
		id := ""
		if s != nil {
			id, leaf = s.r.ID, s.leaf
		}
		ok := true
		bad := func(field, problem string) {
			rep.fail(Failure{Index: i, ReceiptID: id, Field: field, Problem: problem})
			ok = false
		}
		if err != nil {
			bad(field, err.Error())
		}
		if s != nil {
			if err == nil {
				if f, err := ring.verifyReceipt(s); err != nil {
					bad(f, err.Error())
				}
			}
			if s.r.Ledger.Index != i {
				bad("ledger.index", fmt.Sprintf("is %d but the receipt is stored at %d (reordered?)", s.r.Ledger.Index, i))
			}
			if s.r.Version != aarm.ReceiptVersion {
				bad("version", fmt.Sprintf("is %q, want %q", s.r.Version, aarm.ReceiptVersion))
			}
			if (i == 0 || prevLeaf != nil) && s.r.Ledger.PrevHash != prevHashHex(prevLeaf) {
				bad("ledger.prev_hash", fmt.Sprintf("is %q, want %q (leaf hash of index %d)", s.r.Ledger.PrevHash, prevHashHex(prevLeaf), int64(i)-1))
			}
		}
		if leaf == nil {
			leaf = LeafHash(raw)
		}
		// Leaf hashes are stored only by logs written before minStoredLevel.
		if stored, err := getValue(txn, nodeKey(compact.NewNodeID(0, i))); err == nil && !bytes.Equal(stored, leaf) {
			bad("tree.leaf", "stored leaf hash does not match the receipt")
		} else if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if !ok {
			clean = false
		}
		_ = rng.Append(leaf, visit)
		prevLeaf = nil
		if ok {
			prevLeaf = leaf
		}
		if s != nil {
			fields, ids = append(fields, fieldsOf(s.r)), append(ids, s.r.ID)
		} else {
			fields, ids = append(fields, nil), append(ids, "")
		}
		next = i + 1
		checkRoot(next)
		return nil
	})
	if err != nil {
		return err
	}
	head := next
	if haveCP && maxCP > head {
		rep.fail(Failure{Index: head, Field: "receipt", Problem: fmt.Sprintf("missing: the log ends here but the checkpoint for tree size %d covers receipts up to index %d (truncated)", maxCP, maxCP-1)})
	}
	if haveCP && maxCP < head {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("receipts %d..%d are not yet covered by a checkpoint (opening the ledger seals them)", maxCP, head-1))
	}
	if !haveCP && head > 0 {
		rep.Warnings = append(rep.Warnings, "the log has no checkpoint")
	}
	for size := range cps {
		if size > head && size != maxCP {
			rep.fail(Failure{Index: head, Field: "receipt", Problem: fmt.Sprintf("missing: checkpoint for tree size %d covers it", size)})
		}
	}
	return verifyIndexes(txn, rep, head, fields, ids)
}

// verifyIndexes checks that every receipt has its id and secondary index
// entries and that no index entry points elsewhere.
func verifyIndexes(txn *badger.Txn, rep *Report, head uint64, fields []*receiptFields, ids []string) error {
	for i, f := range fields {
		if f == nil {
			continue
		}
		idx := uint64(i)
		if ids[i] == "" {
			rep.fail(Failure{Index: idx, Field: "receipt_id", Problem: "empty"})
		} else if got, err := getU64(txn, idKey(ids[i])); err != nil || got != idx {
			rep.fail(Failure{Index: idx, ReceiptID: ids[i], Field: "index.receipt_id", Problem: "id index does not point at this receipt"})
		}
	}
	err := iterate(txn, pfxID, true, func(k, v []byte) error {
		id := string(k[len(pfxID):])
		if len(v) != 8 {
			rep.fail(Failure{ReceiptID: id, Field: "index.receipt_id", Problem: "malformed entry"})
			return nil
		}
		i := binary.BigEndian.Uint64(v)
		if i >= head || ids[i] != id {
			rep.fail(Failure{Index: i, ReceiptID: id, Field: "index.receipt_id", Problem: fmt.Sprintf("points at index %d, which does not hold this receipt", i)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Value indexes: every listed receipt has the entry's value, and every
	// receipt with a value is listed once.
	for _, p := range valueIndexes {
		listed := make([]bool, len(fields))
		err := iterate(txn, p, true, func(k, v []byte) error {
			idx, ok := postings(k, v)
			if !ok || len(k) < len(p)+9 || k[len(k)-9] != 0 {
				rep.fail(Failure{Field: indexName(k), Problem: fmt.Sprintf("malformed entry %q", k)})
				return nil
			}
			value := string(k[len(p) : len(k)-9])
			for _, i := range idx {
				switch {
				case i >= head || fields[i] == nil || fields[i].value(p) != value:
					rep.fail(Failure{Index: i, Field: indexName(k), Problem: "index entry does not match the receipt at that index"})
				case listed[i]:
					rep.fail(Failure{Index: i, Field: indexName(k), Problem: "receipt is listed twice"})
				default:
					listed[i] = true
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, f := range fields {
			if f != nil && f.value(p) != "" && !listed[i] {
				rep.fail(Failure{Index: uint64(i), ReceiptID: ids[i], Field: indexName([]byte(p)), Problem: "secondary index entry is missing"})
			}
		}
	}
	// Time index: each entry lists receipts of its millisecond (or, in
	// older logs, one receipt of exactly its time).
	listed := make([]bool, len(fields))
	err = iterate(txn, pfxTime, true, func(k, v []byte) error {
		idx, ok := postings(k, v)
		if !ok || len(k) != len(pfxTime)+16 {
			rep.fail(Failure{Field: indexName(k), Problem: fmt.Sprintf("malformed entry %q", k)})
			return nil
		}
		t := int64(binary.BigEndian.Uint64(k[len(pfxTime):]))
		for _, i := range idx {
			switch {
			case i >= head || fields[i] == nil || (t != timeBucket(fields[i].timeNano) && (len(idx) > 1 || t != fields[i].timeNano)):
				rep.fail(Failure{Index: i, Field: indexName(k), Problem: "index entry does not match the receipt at that index"})
			case listed[i]:
				rep.fail(Failure{Index: i, Field: indexName(k), Problem: "receipt is listed twice"})
			default:
				listed[i] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, f := range fields {
		if f != nil && !listed[i] {
			rep.fail(Failure{Index: uint64(i), ReceiptID: ids[i], Field: indexName([]byte(pfxTime)), Problem: "secondary index entry is missing"})
		}
	}
	return iterate(txn, pfxPending, true, func(k, v []byte) error {
		aid := string(k[len(pfxPending):])
		if len(v) != 8 {
			rep.fail(Failure{Field: "index.in_flight", Problem: fmt.Sprintf("malformed marker for action %q", aid)})
			return nil
		}
		i := binary.BigEndian.Uint64(v)
		if i >= head || fields[i] == nil || fields[i].action != aid {
			rep.fail(Failure{Index: i, Field: "index.in_flight", Problem: fmt.Sprintf("in-flight marker for action %q points at a receipt of another action", aid)})
		}
		return nil
	})
}

// lastIndex is the last receipt index a checkpoint of tree size covers (0
// for the empty tree): checkpoint failures are reported there.
func lastIndex(size uint64) uint64 {
	if size == 0 {
		return 0
	}
	return size - 1
}

func indexName(k []byte) string {
	switch {
	case bytes.HasPrefix(k, []byte(pfxSession)):
		return "index.session"
	case bytes.HasPrefix(k, []byte(pfxAction)):
		return "index.action"
	case bytes.HasPrefix(k, []byte(pfxVerdict)):
		return "index.verdict"
	case bytes.HasPrefix(k, []byte(pfxKind)):
		return "index.kind"
	case bytes.HasPrefix(k, []byte(pfxTime)):
		return "index.time"
	}
	return "index"
}

// iterate calls fn for every key (and value when values is set) under prefix.
func iterate(txn *badger.Txn, prefix string, values bool, fn func(k, v []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = values
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var v []byte
		if values {
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		if err := fn(item.KeyCopy(nil), v); err != nil {
			return err
		}
	}
	return nil
}

// maxBundleLine bounds one line of a bundle.
const maxBundleLine = 16 << 20

// VerifyBundle checks an exported JSONL bundle (Export, docs/receipts.md)
// with only the public keys: the trailer's checkpoint signature, every
// receipt's signature, strictly increasing indexes below the checkpoint
// size, the prev_hash chain between consecutive receipts, and either the
// Merkle root (complete bundles) or each receipt's inclusion proof against
// the checkpoint. The error is for failures to run; findings are in the
// Report.
func VerifyBundle(r io.Reader, pubKeys [][]byte) (*Report, error) {
	ring, err := newKeyRing(pubKeys)
	if err != nil {
		return nil, err
	}
	if len(ring) == 0 {
		return nil, errors.New("ledger: VerifyBundle needs at least one public key")
	}
	type line struct {
		n   int
		raw []byte
	}
	var lines []line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBundleLine)
	for n := 1; sc.Scan(); n++ {
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
			lines = append(lines, line{n: n, raw: append([]byte(nil), b...)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ledger: read bundle: %w", err)
	}
	rep := &Report{}
	if len(lines) == 0 {
		rep.fail(Failure{Field: "bundle", Problem: "empty bundle"})
		return rep, nil
	}
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	var tr BundleTrailer
	dec := json.NewDecoder(bytes.NewReader(last.raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil || tr.Bundle != BundleVersion {
		rep.fail(Failure{Line: last.n, Field: "bundle", Problem: fmt.Sprintf("last line is not a %s trailer", BundleVersion)})
		return rep, nil
	}
	cp, err := ring.verifyCheckpoint([]byte(tr.Checkpoint))
	haveCP := err == nil
	if haveCP {
		rep.Checkpoints, rep.Size, rep.Root = 1, cp.Size, cp.Hash
	} else {
		// Still check the receipts; tree checks need a trusted checkpoint.
		rep.fail(Failure{Line: last.n, Field: "checkpoint", Problem: err.Error() + " (Merkle checks skipped)"})
		cp = &SignedCheckpoint{Size: ^uint64(0)}
	}
	proofs := map[uint64][][]byte{}
	for _, p := range tr.Proofs {
		proofs[p.Index] = p.Hashes
	}

	var (
		prevIdx  uint64
		havePrev bool
		prevLeaf []byte
		leaves   [][]byte
		complete = true
	)
	for _, ln := range lines {
		rep.Receipts++
		s, field, err := parseStored(ln.raw)
		if s == nil {
			rep.fail(Failure{Index: prevIdx + 1, Line: ln.n, Field: field, Problem: err.Error()})
			complete, prevLeaf = false, nil
			continue
		}
		i := s.r.Ledger.Index
		bad := func(field, problem string) {
			rep.fail(Failure{Index: i, ReceiptID: s.r.ID, Line: ln.n, Field: field, Problem: problem})
		}
		if err != nil {
			bad(field, err.Error())
		} else if f, err := ring.verifyReceipt(s); err != nil {
			bad(f, err.Error())
		}
		if havePrev && i <= prevIdx {
			bad("ledger.index", fmt.Sprintf("is %d, not after the previous receipt's %d (reordered?)", i, prevIdx))
		}
		if i >= cp.Size {
			bad("ledger.index", fmt.Sprintf("is %d, beyond the checkpoint's tree size %d", i, cp.Size))
		}
		switch {
		case i == 0 && s.r.Ledger.PrevHash != "":
			bad("ledger.prev_hash", "must be empty at index 0")
		case havePrev && i == prevIdx+1 && prevLeaf != nil && s.r.Ledger.PrevHash != hex.EncodeToString(prevLeaf):
			bad("ledger.prev_hash", fmt.Sprintf("does not match the leaf hash of index %d", prevIdx))
		}
		if tr.Complete {
			want := uint64(0)
			if havePrev {
				want = prevIdx + 1
			}
			for ; want < i && want < cp.Size; want++ {
				rep.fail(Failure{Index: want, Line: ln.n, Field: "receipt", Problem: "missing from the bundle"})
			}
		}
		if i != uint64(len(leaves)) {
			complete = false
		}
		leaves = append(leaves, s.leaf)
		if !haveCP {
			// nothing to prove against
		} else if p, ok := proofs[i]; ok {
			if err := proof.VerifyInclusion(hasher, i, cp.Size, s.leaf, p, cp.Hash); err != nil {
				bad("inclusion_proof", err.Error())
			}
		} else if !tr.Complete {
			bad("inclusion_proof", "missing from the trailer")
		}
		prevIdx, havePrev, prevLeaf = i, true, s.leaf
	}
	if uint64(len(leaves)) != cp.Size {
		complete = false
	}
	switch {
	case !haveCP || !tr.Complete:
	case complete:
		rng := rangeFactory.NewEmptyRange(0)
		for _, lf := range leaves {
			_ = rng.Append(lf, nil)
		}
		root := hasher.EmptyRoot()
		if len(leaves) > 0 {
			root, _ = rng.GetRootHash(nil)
		}
		if !bytes.Equal(root, cp.Hash) {
			rep.fail(Failure{Index: lastIndex(cp.Size), Line: last.n, Field: "checkpoint", Problem: "root hash does not match the bundle's receipts"})
		}
	case havePrev && prevIdx+1 < cp.Size:
		rep.fail(Failure{Index: prevIdx + 1, Line: last.n, Field: "receipt", Problem: fmt.Sprintf("missing from the bundle: the checkpoint covers %d receipts (truncated)", cp.Size)})
	case !havePrev && cp.Size > 0:
		rep.fail(Failure{Index: 0, Line: last.n, Field: "receipt", Problem: fmt.Sprintf("missing from the bundle: the checkpoint covers %d receipts", cp.Size)})
	}
	if haveCP && !tr.Complete {
		// The trailer's "complete" flag is not signed: a partial bundle
		// proves each receipt it holds, never that none was left out.
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("partial bundle: %d of the %d receipts the checkpoint covers; each receipt here is proved, but receipts left out of the bundle cannot be detected from it", len(leaves), cp.Size))
	}
	rep.sort()
	return rep, nil
}
