package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
)

// The append pipeline (issue 5: throughput without giving up durability).
//
//  1. Append, in the caller's goroutine, fills in id and version and
//     encodes the canonical bytes with a placeholder ledger position (and
//     time), so encoding runs on every core without coordination.
//  2. The sequencer (run, one goroutine) takes receipts in arrival order,
//     gives each its time, index and prev_hash (splicing them into the
//     canonical bytes), hashes the leaf, extends the Merkle tree, adds the
//     receipt to the open batch, then hands it to a pool of signers (one
//     per core). Signing needs the position but nothing after it, so
//     receipts are signed while earlier batches are still being written.
//  3. When no batch is being written the sequencer closes the open batch
//     and a committer goroutine signs its checkpoint, waits for its
//     receipts' signatures, and writes everything in one Badger
//     transaction and one sync.
//
// A batch is written only after the previous one is durable, so a failed
// write can never leave a later batch on disk after a gap; batch sizes
// follow the load (everything that arrived during the previous sync).
// Appends return when their batch is durable.

// prepared is one receipt of a batch on its way to disk.
type prepared struct {
	req       *appendReq
	canonical []byte
	leaf      []byte
	value     []byte // stored form, set by the signer
	err       error  // signing error, set by the signer
}

// batchWork is a batch: everything the committer writes.
type batchWork struct {
	ps      []*prepared
	nodes   []storedNode
	pending map[string]bool // in-flight marker changes: true set, false clear
	ids     []string        // caller-chosen receipt ids in the batch
	bytes   int             // approximate transaction size
	size    uint64          // tree size after the batch
	root    []byte          // tree root after the batch
	cp      SignedCheckpoint
	signed  sync.WaitGroup // one per receipt, done when it is signed
}

type storedNode struct {
	id compact.NodeID
	h  []byte
}

// signJob asks a signer to sign receipt p of batch w.
type signJob struct {
	w *batchWork
	p *prepared
}

// run is the sequencer. It owns l.rng, l.prevLeaf, l.failed, l.pending,
// l.prepared and l.unsettled.
func (l *Ledger) run() {
	defer close(l.done)
	jobs := make(chan signJob, 2*l.maxBatch)
	var signers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		signers.Go(func() {
			for j := range jobs {
				l.signReceipt(j.p)
				j.w.signed.Done()
				runtime.Gosched()
			}
		})
	}
	defer signers.Wait()
	defer close(jobs)

	var (
		open, writing *batchWork
		written       chan error // result of the batch being written
		quit          = l.quit
		quitting      bool
	)
	for {
		if writing == nil && open != nil {
			if l.failed != nil {
				open.signed.Wait()
				l.finishWork(open, l.failed)
			} else {
				writing = open
				writing.root = l.root(writing.size)
				written = make(chan error, 1)
				go func(w *batchWork, ch chan error) { ch <- l.commit(w) }(writing, written)
			}
			open = nil
		}
		if quitting && writing == nil && len(l.reqs) == 0 {
			// No sender can enqueue any more (closed is set).
			return
		}
		reqs := l.reqs
		if open != nil && (len(open.ps) >= l.maxBatch || open.bytes > l.maxBatchBytes) {
			reqs = nil // the open batch is full: wait for the write
		}
		select {
		case req := <-reqs:
			open = l.sequence(open, req, jobs)
		case err := <-written:
			l.settle(writing, err)
			writing, written = nil, nil
		case <-quit:
			quitting, quit = true, nil
		}
	}
}

// root is the tree root after size receipts (the empty root for none).
func (l *Ledger) root(size uint64) []byte {
	if size == 0 {
		return hasher.EmptyRoot()
	}
	h, err := l.rng.GetRootHash(nil)
	if err != nil {
		// A compact range of a non-empty tree always has a root.
		panic(fmt.Sprintf("ledger: tree root at size %d: %v", size, err))
	}
	return h
}

// sequence positions one receipt and adds it to the open batch (creating
// it when nil), or answers it at once when it cannot be appended.
func (l *Ledger) sequence(open *batchWork, q *appendReq, jobs chan<- signJob) *batchWork {
	reject := func(err error) *batchWork {
		q.err = err
		close(q.done)
		return open
	}
	if l.failed != nil {
		return reject(l.failed)
	}
	r := &q.r
	if q.callerID {
		// Caller-chosen ids must stay unique across the whole log,
		// including batches that are not durable yet.
		if l.unsettled[r.ID] || l.idTaken(r.ID) {
			return reject(fmt.Errorf("%w: receipt id %q already exists", ErrInvalidReceipt, r.ID))
		}
	}
	size := max(l.size, l.prepared)
	r.Ledger = aarm.LedgerPosition{Index: size, PrevHash: prevHashHex(l.prevLeaf)}
	// The real time (when the sequencer sets it) and position replace the
	// placeholders Append encoded, in one copy.
	edits := make([]edit, 0, 2)
	member, ok := positionMember(r.Ledger)
	edits = append(edits, edit{old: l.placeholderMember, new: member})
	if q.seqTime {
		// Times set here follow log order, as the time index expects.
		r.Time = l.now().UTC()
		t, tok := appendTimeJSON(r.Time)
		ok = ok && tok
		edits = append(edits, edit{old: l.timePlaceholderJSON, new: t})
	}
	var c []byte
	spliced := false
	if ok {
		c, spliced = splice(q.canonical, edits)
	}
	if !spliced {
		var err error
		if c, err = CanonicalBytes(r); err != nil {
			return reject(err)
		}
	}
	if open == nil {
		open = &batchWork{pending: map[string]bool{}}
	}
	p := &prepared{req: q, canonical: c, leaf: LeafHash(c)}
	if err := l.rng.Append(p.leaf, func(id compact.NodeID, h []byte) {
		if id.Level >= minStoredLevel {
			open.nodes = append(open.nodes, storedNode{id, h})
		}
	}); err != nil {
		return reject(fmt.Errorf("%w: tree: %w", ErrUnavailable, err))
	}
	l.prevLeaf = p.leaf
	l.prepared = size + 1
	if aid := r.Action.ID; aid != "" {
		switch inFlight(r) {
		case markSet:
			open.pending[aid], l.pending[aid] = true, true
		case markClear:
			if l.pending[aid] {
				open.pending[aid] = false
				delete(l.pending, aid)
			}
		}
	}
	if q.callerID {
		open.ids = append(open.ids, r.ID)
		l.unsettled[r.ID] = true
	}
	open.ps = append(open.ps, p)
	open.size = l.prepared
	open.bytes += 2 * len(c)
	open.signed.Add(1)
	jobs <- signJob{w: open, p: p}
	return open
}

// idTaken reports whether a receipt id is in the store. A read error counts
// as taken: the append is refused rather than risk a duplicate.
func (l *Ledger) idTaken(id string) bool {
	taken := true
	_ = l.db.View(func(txn *badger.Txn) error {
		taken = idExists(txn, id)
		return nil
	})
	return taken
}

// settle finishes a written batch: on success it publishes the new size and
// checkpoint and releases the Appends; on failure the ledger stops.
func (l *Ledger) settle(w *batchWork, err error) {
	for _, id := range w.ids {
		delete(l.unsettled, id)
	}
	if err != nil {
		l.failed = fmt.Errorf("%w: %w", ErrUnavailable, err)
		l.log.Error("ledger: write failed; refusing further receipts until restart", slog.String("error", err.Error()))
		l.finishWork(w, l.failed)
		return
	}
	l.mu.Lock()
	l.size, l.cp = w.size, w.cp
	l.mu.Unlock()
	l.finishWork(w, nil)
}

func (l *Ledger) finishWork(w *batchWork, err error) {
	for _, p := range w.ps {
		p.req.err = err
		close(p.req.done)
	}
}

// appendTimeJSON is t as encoding/json writes it (a quoted RFC 3339 string,
// which RFC 8785 keeps as it is: ASCII without escapes). ok is false for
// times json cannot encode; the caller then re-encodes and fails.
func appendTimeJSON(t time.Time) (b []byte, ok bool) {
	b, err := t.MarshalJSON()
	return b, err == nil
}

// edit is one placeholder replacement for splice.
type edit struct{ old, new []byte }

// splice returns c with the only occurrence of each edit's old bytes
// replaced by its new bytes, in a new slice. The placeholders are
// per-process random values, so each occurs exactly once unless something
// is wrong; then ok is false and the caller re-encodes.
func splice(c []byte, edits []edit) (out []byte, ok bool) {
	type at struct {
		i int
		e edit
	}
	pos := make([]at, 0, len(edits))
	size := len(c)
	for _, e := range edits {
		i := bytes.Index(c, e.old)
		if i < 0 || bytes.LastIndex(c, e.old) != i {
			return nil, false
		}
		pos = append(pos, at{i, e})
		size += len(e.new) - len(e.old)
	}
	slices.SortFunc(pos, func(a, b at) int { return a.i - b.i })
	out = make([]byte, 0, size)
	last := 0
	for _, p := range pos {
		if p.i < last {
			return nil, false // overlapping placeholders
		}
		out = append(out, c[last:p.i]...)
		out = append(out, p.e.new...)
		last = p.i + len(p.e.old)
	}
	return append(out, c[last:]...), true
}

// positionMember is the canonical ledger member for pos. RFC 8785 writes
// integers below 2^53 in plain decimal, as here.
func positionMember(pos aarm.LedgerPosition) ([]byte, bool) {
	if pos.Index >= 1<<53 {
		return nil, false
	}
	b := make([]byte, 0, 64+len(pos.PrevHash))
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, pos.Index, 10)
	b = append(b, `,"prev_hash":"`...)
	b = append(b, pos.PrevHash...)
	return append(b, `"}`...), true
}

// signReceipt signs one positioned receipt and builds its stored form: the
// canonical bytes with the signature member added in front. The stored
// bytes are valid JSON but not themselves canonical; verifiers canonicalise
// them (parseStored).
func (l *Ledger) signReceipt(p *prepared) {
	sig, err := l.signer.SignMessage(bytes.NewReader(p.canonical))
	if err != nil {
		p.err = fmt.Errorf("sign receipt: %w", err)
		return
	}
	s := &aarm.Signature{Algorithm: l.alg, KeyID: l.keyID, Value: base64.StdEncoding.EncodeToString(sig)}
	p.req.r.Signature = s
	// Algorithm, key id (hex) and value (base64) need no JSON escaping.
	v := make([]byte, 0, len(p.canonical)+len(s.Algorithm)+len(s.KeyID)+len(s.Value)+64)
	v = append(v, `{"signature":{"algorithm":"`...)
	v = append(v, s.Algorithm...)
	v = append(v, `","key_id":"`...)
	v = append(v, s.KeyID...)
	v = append(v, `","value":"`...)
	v = append(v, s.Value...)
	v = append(v, `"},`...)
	p.value = append(v, p.canonical[1:]...)
}

// commit signs the batch's checkpoint, waits for its receipts' signatures
// and writes it. A signing error stops the ledger like a failed write: the
// tree already holds the batch's leaves.
func (l *Ledger) commit(w *batchWork) error {
	cp, cpErr := signCheckpoint(l.signer, l.keyID, log.Checkpoint{Origin: l.origin, Size: w.size, Hash: w.root})
	w.signed.Wait()
	errs := []error{cpErr}
	for _, p := range w.ps {
		errs = append(errs, p.err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	w.cp = cp
	return l.write(w)
}

// write is the last stage: the batch's receipts, indexes, tree nodes,
// in-flight markers and checkpoint in one transaction and one sync. Should
// Badger refuse the transaction as too big it is split, with the checkpoint
// in the last part, so that a checkpoint never covers receipts that are not
// durable (Open verifies and seals an uncovered tail).
func (l *Ledger) write(w *batchWork) error {
	txn := l.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	retry := func(err error, op func() error) error {
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			txn = l.db.NewTransaction(true)
			err = op()
		}
		return err
	}
	set := func(k, v []byte) error {
		err := txn.Set(k, v)
		if err != nil {
			err = retry(err, func() error { return txn.Set(k, v) })
		}
		return err
	}
	// Keys are cut from one buffer per batch: Badger keeps the slices
	// until the commit and never writes to them.
	var a keyArena
	a.buf = make([]byte, 0, len(w.ps)*160+len(w.nodes)*(len(pfxNode)+9))
	type posting struct{ key, more []byte }
	var (
		lists = map[string]*posting{}
		order []*posting
	)
	for _, p := range w.ps {
		r := &p.req.r
		i := r.Ledger.Index
		if err := set(a.u64(pfxEntry, i), p.value); err != nil {
			return err
		}
		if err := set(a.str(pfxID, r.ID), be64(i)); err != nil {
			return err
		}
		f := fieldsOf(r)
		for _, pfx := range valueIndexes {
			v := f.value(pfx)
			if v == "" {
				continue
			}
			if e := lists[pfx+v]; e != nil {
				e.more = binary.BigEndian.AppendUint64(e.more, i)
				continue
			}
			e := &posting{key: a.value(pfx, v, i)}
			lists[pfx+v] = e
			order = append(order, e)
		}
		tk := pfxTime + string(be64(uint64(timeBucket(f.timeNano))))
		if e := lists[tk]; e != nil {
			e.more = binary.BigEndian.AppendUint64(e.more, i)
		} else {
			e := &posting{key: a.time(timeBucket(f.timeNano), i)}
			lists[tk] = e
			order = append(order, e)
		}
		if v, ok := w.pending[r.Action.ID]; ok && r.Action.ID != "" && inFlight(r) != markKeep {
			// Only the last receipt of the action in this batch decides.
			k := a.str(pfxPending, r.Action.ID)
			var err error
			if v {
				err = set(k, be64(i))
			} else if err = txn.Delete(k); err != nil {
				err = retry(err, func() error { return txn.Delete(k) })
			}
			if err != nil {
				return err
			}
		}
	}
	for _, e := range order {
		if err := set(e.key, e.more); err != nil {
			return err
		}
	}
	for _, n := range w.nodes {
		if err := set(a.node(n.id), n.h); err != nil {
			return err
		}
	}
	if err := set(checkpointKey(w.size), w.cp.Note); err != nil {
		return err
	}
	return txn.Commit()
}

// keyArena builds keys in one growing buffer. Each key is a capped slice,
// so a later append never writes into it (a grown buffer is a new array).
type keyArena struct{ buf []byte }

func (a *keyArena) cut(start int) []byte { return a.buf[start:len(a.buf):len(a.buf)] }

func (a *keyArena) u64(prefix string, v uint64) []byte {
	start := len(a.buf)
	a.buf = append(a.buf, prefix...)
	a.buf = binary.BigEndian.AppendUint64(a.buf, v)
	return a.cut(start)
}

func (a *keyArena) str(prefix, s string) []byte {
	start := len(a.buf)
	a.buf = append(append(a.buf, prefix...), s...)
	return a.cut(start)
}

func (a *keyArena) value(prefix, value string, i uint64) []byte {
	start := len(a.buf)
	a.buf = append(append(a.buf, prefix...), value...)
	a.buf = append(a.buf, 0)
	a.buf = binary.BigEndian.AppendUint64(a.buf, i)
	return a.cut(start)
}

func (a *keyArena) time(unixNano int64, i uint64) []byte {
	start := len(a.buf)
	a.buf = append(a.buf, pfxTime...)
	a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(unixNano))
	a.buf = binary.BigEndian.AppendUint64(a.buf, i)
	return a.cut(start)
}

func (a *keyArena) node(id compact.NodeID) []byte {
	start := len(a.buf)
	a.buf = append(append(a.buf, pfxNode...), byte(id.Level))
	a.buf = binary.BigEndian.AppendUint64(a.buf, id.Index)
	return a.cut(start)
}
