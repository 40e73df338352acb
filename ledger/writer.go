package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// The writer is a two-stage pipeline run by one goroutine. Stage one turns a
// batch of queued appends into signed receipts, tree nodes and a signed
// checkpoint (CPU work, spread over all cores). Stage two writes the batch
// in one Badger transaction and one sync. Batch N+1 is prepared while batch
// N is being synced, but a batch is only written after the previous one is
// durable, so a failed write can never leave a later batch on disk after a
// gap. Appends return when their batch is durable.

// prepared is one receipt of a batch on its way to disk.
type prepared struct {
	req       *appendReq
	canonical []byte
	leaf      []byte
	value     []byte
}

// batchWork is a prepared batch: everything stage two writes.
type batchWork struct {
	ps      []*prepared
	nodes   []nodeHash
	pending map[string]bool // in-flight marker changes: true set, false clear
	size    uint64          // tree size after the batch
	cp      SignedCheckpoint
}

type nodeHash struct {
	id compact.NodeID
	h  []byte
}

// run is the group-commit writer.
func (l *Ledger) run() {
	defer close(l.done)
	var (
		inflight chan error // result of the batch being written, if any
		writing  *batchWork
	)
	settle := func() {
		if inflight != nil {
			l.settle(writing, <-inflight)
			inflight, writing = nil, nil
		}
	}
	start := func(w *batchWork) {
		settle()
		if l.failed != nil {
			l.finishWork(w, l.failed)
			return
		}
		inflight, writing = make(chan error, 1), w
		go func(ch chan error) { ch <- l.write(w) }(inflight)
	}
	for {
		select {
		case req := <-l.reqs:
			for _, w := range l.prepare(l.collect(req)) {
				start(w)
			}
		case err := <-inflight:
			l.settle(writing, err)
			inflight, writing = nil, nil
		case <-l.quit:
			// No sender can enqueue any more (closed is set): write what
			// is queued, then stop.
			for {
				select {
				case req := <-l.reqs:
					for _, w := range l.prepare(l.collect(req)) {
						start(w)
					}
				default:
					settle()
					return
				}
			}
		}
	}
}

func (l *Ledger) collect(first *appendReq) []*appendReq {
	batch := []*appendReq{first}
	for len(batch) < l.maxBatch {
		select {
		case req := <-l.reqs:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// settle finishes a written batch: on success it publishes the new size and
// checkpoint and releases the Appends; on failure the ledger stops.
func (l *Ledger) settle(w *batchWork, err error) {
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

// prepare runs stage one for a batch. Receipts that cannot be appended are
// answered at once. It returns the batches to write in order: none when
// nothing is left, more than one when the batch is over maxBatchBytes.
func (l *Ledger) prepare(batch []*appendReq) []*batchWork {
	reject := func(q *appendReq, err error) {
		q.err = err
		close(q.done)
	}
	if l.failed != nil {
		for _, q := range batch {
			reject(q, l.failed)
		}
		return nil
	}
	now := l.now().UTC()

	// Ids and times (serial, cheap).
	var live []*appendReq
	seen := map[string]bool{}
	rtxn := l.db.NewTransaction(false)
	for _, q := range batch {
		r := &q.r
		if r.ID == "" {
			id, err := newReceiptID(now)
			if err != nil {
				reject(q, err)
				continue
			}
			r.ID = id
		} else if seen[r.ID] || idExists(rtxn, r.ID) {
			// Caller-chosen ids must stay unique across the whole log.
			reject(q, fmt.Errorf("%w: receipt id %q already exists", ErrInvalidReceipt, r.ID))
			continue
		}
		seen[r.ID] = true
		r.Version = aarm.ReceiptVersion
		if r.Time.IsZero() {
			r.Time = now
		}
		r.Signature = nil
		live = append(live, q)
	}
	rtxn.Discard()

	// Canonical bytes with a placeholder ledger position (parallel). The
	// hash chain makes each position depend on the previous receipt's
	// bytes; the placeholder lets the encoding run on every core anyway.
	ps := make([]*prepared, len(live))
	errs := make([]error, len(live))
	parallel(len(live), func(i int) {
		r := live[i].r // a copy: the real position is set on live[i].r below
		r.Ledger = aarm.LedgerPosition{PrevHash: l.placeholder}
		c, err := CanonicalBytes(&r)
		if err != nil {
			errs[i] = err
			return
		}
		ps[i] = &prepared{req: live[i], canonical: c}
	})

	// Positions, hash chain, leaf hashes, tree nodes, in-flight markers
	// (serial).
	w := &batchWork{pending: map[string]bool{}}
	size := l.size
	if l.prepared > size {
		size = l.prepared
	}
	bytesInBatch := 0
	var rest []*appendReq
	for i, p := range ps {
		if p == nil {
			reject(live[i], errs[i])
			continue
		}
		if bytesInBatch > l.maxBatchBytes {
			for j := i; j < len(ps); j++ {
				if ps[j] == nil {
					reject(live[j], errs[j])
				} else {
					rest = append(rest, live[j])
				}
			}
			break
		}
		r := &p.req.r
		r.Ledger = aarm.LedgerPosition{Index: size + uint64(len(w.ps)), PrevHash: prevHashHex(l.prevLeaf)}
		c, spliced := l.splicePosition(p.canonical, r.Ledger)
		if !spliced {
			var err error
			if c, err = CanonicalBytes(r); err != nil {
				reject(p.req, err)
				continue
			}
		}
		p.canonical, p.leaf = c, LeafHash(c)
		if err := l.rng.Append(p.leaf, func(id compact.NodeID, h []byte) { w.nodes = append(w.nodes, nodeHash{id, h}) }); err != nil {
			reject(p.req, fmt.Errorf("%w: tree: %w", ErrUnavailable, err))
			continue
		}
		l.prevLeaf = p.leaf
		if aid := r.Action.ID; aid != "" {
			switch inFlight(r) {
			case markSet:
				w.pending[aid], l.pending[aid] = true, true
			case markClear:
				if l.pending[aid] {
					w.pending[aid] = false
					delete(l.pending, aid)
				}
			}
		}
		w.ps = append(w.ps, p)
		bytesInBatch += 2 * len(c)
	}
	if len(w.ps) == 0 {
		return l.prepareRest(rest, nil)
	}
	w.size = size + uint64(len(w.ps))
	l.prepared = w.size

	// Signatures, stored form and the checkpoint (parallel).
	var cpErr error
	var wg sync.WaitGroup
	wg.Go(func() { w.cp, cpErr = l.sign(w.size) })
	sigErr := l.signAll(w.ps)
	wg.Wait()
	if err := errors.Join(sigErr, cpErr); err != nil {
		// The tree already holds these leaves: stop the ledger.
		l.failed = fmt.Errorf("%w: %w", ErrUnavailable, err)
		l.finishWork(w, l.failed)
		return l.prepareRest(rest, nil)
	}
	return l.prepareRest(rest, w)
}

// prepareRest prepares the part of an oversized batch that was cut off, as
// the batches that follow w.
func (l *Ledger) prepareRest(rest []*appendReq, w *batchWork) []*batchWork {
	var out []*batchWork
	if w != nil {
		out = append(out, w)
	}
	if len(rest) > 0 {
		out = append(out, l.prepare(rest)...)
	}
	return out
}

// splicePosition replaces the placeholder ledger member in canonical bytes
// with pos. The placeholder is a per-process random value, so it occurs
// exactly once unless something is wrong; then the caller re-encodes.
// RFC 8785 writes integers below 2^53 in plain decimal, as here.
func (l *Ledger) splicePosition(c []byte, pos aarm.LedgerPosition) ([]byte, bool) {
	old := l.placeholderMember
	i := bytes.Index(c, old)
	if i < 0 || bytes.LastIndex(c, old) != i || pos.Index >= 1<<53 {
		return nil, false
	}
	member := `{"index":` + strconv.FormatUint(pos.Index, 10) + `,"prev_hash":"` + pos.PrevHash + `"}`
	out := make([]byte, 0, len(c)-len(old)+len(member))
	out = append(out, c[:i]...)
	out = append(out, member...)
	return append(out, c[i+len(old):]...), true
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// signAll signs the prepared receipts in parallel (signing dominates the
// CPU cost of an append) and builds their stored form: the canonical bytes
// with the signature member added in front. The stored bytes are valid JSON
// but not themselves canonical; verifiers canonicalise them (parseStored).
func (l *Ledger) signAll(ps []*prepared) error {
	errs := make([]error, len(ps))
	parallel(len(ps), func(i int) {
		p := ps[i]
		sig, err := l.signer.SignMessage(bytes.NewReader(p.canonical))
		if err != nil {
			errs[i] = fmt.Errorf("sign receipt: %w", err)
			return
		}
		s := &aarm.Signature{Algorithm: l.alg, KeyID: l.keyID, Value: base64.StdEncoding.EncodeToString(sig)}
		p.req.r.Signature = s
		// Algorithm, key id (hex) and value (base64) need no JSON escaping.
		head := `{"signature":{"algorithm":"` + s.Algorithm + `","key_id":"` + s.KeyID + `","value":"` + s.Value + `"},`
		v := make([]byte, 0, len(head)+len(p.canonical))
		v = append(v, head...)
		p.value = append(v, p.canonical[1:]...)
	})
	return errors.Join(errs...)
}

// write is stage two: the batch's receipts, indexes, tree nodes, in-flight
// markers and checkpoint in one transaction and one sync. Should Badger
// refuse the transaction as too big it is split, with the checkpoint in the
// last part, so that a checkpoint never covers receipts that are not durable
// (Open verifies and seals an uncovered tail).
func (l *Ledger) write(w *batchWork) error {
	txn := l.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	retry := func(op func() error) error {
		err := op()
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			txn = l.db.NewTransaction(true)
			err = op()
		}
		return err
	}
	set := func(k, v []byte) error { return retry(func() error { return txn.Set(k, v) }) }
	for _, p := range w.ps {
		r := &p.req.r
		i := r.Ledger.Index
		if err := set(entryKey(i), p.value); err != nil {
			return err
		}
		if err := set(idKey(r.ID), be64(i)); err != nil {
			return err
		}
		for _, k := range indexKeys(fieldsOf(r), i) {
			if err := set(k, nil); err != nil {
				return err
			}
		}
		if v, ok := w.pending[r.Action.ID]; ok && r.Action.ID != "" && inFlight(r) != markKeep {
			// Only the last receipt of the action in this batch decides.
			var err error
			if v {
				err = set(pendingKey(r.Action.ID), be64(i))
			} else {
				err = retry(func() error { return txn.Delete(pendingKey(r.Action.ID)) })
			}
			if err != nil {
				return err
			}
		}
	}
	for _, n := range w.nodes {
		if err := set(nodeKey(n.id), n.h); err != nil {
			return err
		}
	}
	if err := set(checkpointKey(w.size), w.cp.Note); err != nil {
		return err
	}
	return txn.Commit()
}
