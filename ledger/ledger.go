package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// Defaults for Options.
const (
	// DefaultMaxBatch bounds how many receipts one group commit writes.
	DefaultMaxBatch = 256
	// DefaultOrigin is the checkpoint origin when Options.Origin is empty.
	DefaultOrigin = "aarm.local/ledger"
	// maxBatchBytes keeps one group commit well under Badger's transaction
	// size limit (a share of the memtable size).
	maxBatchBytes = 4 << 20
)

// Outcome written by Open for actions that were forwarded when the process
// stopped and have no outcome receipt (issue 5, "Recovery").
const (
	RestartStatus = "unknown"
	RestartError  = "process restart"
)

// Options configures Open.
type Options struct {
	// Signer signs receipts and checkpoints (LoadSigner). Required.
	Signer signature.SignerVerifier
	// OldPublicKeys are PKIX PEMs of earlier signing keys, kept so that the
	// receipts they signed still verify after a key rotation.
	OldPublicKeys [][]byte
	// Origin is the checkpoint origin line and note key name, e.g.
	// "aarm.local/<install id>". It must stay the same for the life of the
	// log. Default DefaultOrigin.
	Origin string
	// MaxBatch bounds the receipts in one group commit. Default DefaultMaxBatch.
	MaxBatch int
	// Logger receives recovery and failure events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for receipt times and ids. Default time.Now.
	Now func() time.Time
}

// Ledger is the append-only receipt log of one aarm instance: receipts are
// signed, hash-chained, committed to an RFC 6962 Merkle tree, and every group
// commit ends with a signed checkpoint. It is safe for concurrent use.
type Ledger struct {
	db       *badger.DB
	signer   signature.SignerVerifier
	keyID    string
	alg      string
	ring     keyRing
	origin   string
	maxBatch int
	// maxBatchBytes cuts a batch that would be too big for one transaction.
	maxBatchBytes int
	log           *slog.Logger
	now           func() time.Time

	reqs     chan *appendReq
	quit     chan struct{}
	done     chan struct{}
	closeMu  sync.RWMutex // held for reading while sending to reqs
	closed   bool
	closeErr error
	once     sync.Once

	mu   sync.RWMutex // guards size and cp
	size uint64
	cp   SignedCheckpoint

	// Owned by the writer goroutine (and by Open before it starts).
	rng       *compact.Range
	prevLeaf  []byte
	failed    error
	pending   map[string]bool // action ids with an in-flight marker
	prepared  uint64          // tree size including batches not yet durable
	unsettled map[string]bool // caller-chosen ids in batches not yet durable

	// placeholder is a random prev_hash used while encoding receipts in
	// parallel; placeholderMember is its canonical ledger member.
	placeholder       string
	placeholderMember []byte
	// timePlaceholder stands in for the receipt time, which the sequencer
	// sets so that times follow log order; timePlaceholderJSON is its
	// canonical form.
	timePlaceholder     time.Time
	timePlaceholderJSON []byte
}

type appendReq struct {
	r aarm.Receipt
	// canonical is r's canonical bytes with the placeholder position.
	canonical []byte
	// callerID is set when the caller chose r.ID.
	callerID bool
	// seqTime is set when the sequencer is to set r.Time.
	seqTime bool
	err     error
	done    chan struct{}
}

// receiptFields are the values the secondary indexes are built from.
type receiptFields struct {
	session, action, verdict, kind string
	timeNano                       int64
}

func fieldsOf(r *aarm.Receipt) *receiptFields {
	f := &receiptFields{session: r.Requester.Session, action: r.Action.ID, kind: string(r.Kind), timeNano: r.Time.UnixNano()}
	if r.Decision != nil {
		f.verdict = r.Decision.Verdict.String()
	}
	return f
}

// Open starts the ledger over db, which must have been opened with
// badger.Options.SyncWrites = true (or be in memory, for tests): Append
// promises durability and relies on each commit being synced.
//
// Open recovers before it returns: it verifies the latest checkpoint's
// signature and root against the stored tree, verifies every receipt after
// it (signature, index, chain), rebuilds the compact range, writes a
// checkpoint for the head, and appends an outcome receipt with execution
// status RestartStatus and error RestartError for every action that was let
// through (decision or approval ALLOW/MODIFY) and has no outcome yet. A log
// that fails these checks is not opened (ErrCorrupt): the gate must fail
// closed rather than extend a log it cannot vouch for.
func Open(ctx context.Context, db *badger.DB, opts Options) (*Ledger, error) {
	if db == nil {
		return nil, errors.New("ledger: nil badger DB")
	}
	if bo := db.Opts(); !bo.SyncWrites && !bo.InMemory {
		return nil, ErrNotDurable
	}
	if opts.Signer == nil {
		return nil, errors.New("ledger: Options.Signer is required")
	}
	pub, err := opts.Signer.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("ledger: signer public key: %w", err)
	}
	alg, err := algorithmOf(pub)
	if err != nil {
		return nil, err
	}
	keyID, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	ring, err := newKeyRing(opts.OldPublicKeys)
	if err != nil {
		return nil, fmt.Errorf("ledger: Options.OldPublicKeys: %w", err)
	}
	ring[keyID] = ringKey{alg: alg, v: opts.Signer}
	origin := opts.Origin
	if origin == "" {
		origin = DefaultOrigin
	}
	if strings.ContainsAny(origin, " \t\n+") || !isPrintableASCII(origin) {
		return nil, fmt.Errorf("ledger: Options.Origin %q must be printable ASCII without spaces or '+'", origin)
	}
	l := &Ledger{
		db: db, signer: opts.Signer, keyID: keyID, alg: alg, ring: ring, origin: origin,
		maxBatch: opts.MaxBatch, log: opts.Logger, now: opts.Now,
		quit: make(chan struct{}), done: make(chan struct{}), unsettled: map[string]bool{},
	}
	l.maxBatchBytes = maxBatchBytes
	if l.maxBatch <= 0 {
		l.maxBatch = DefaultMaxBatch
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.reqs = make(chan *appendReq, l.maxBatch)
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l.placeholder = hex.EncodeToString(nonce[:])
	l.placeholderMember = []byte(`{"index":0,"prev_hash":"` + l.placeholder + `"}`)
	// A random instant of the first day of year 1: no receipt time, and its
	// RFC 3339 text is unique in practice (splicing checks).
	l.timePlaceholder = time.Date(1, 1, 1, 0, 0, 0, int(binary.BigEndian.Uint64(nonce[:8])%(86400*1e9)), time.UTC)
	tp, err := l.timePlaceholder.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l.timePlaceholderJSON = tp
	if err := l.recoverTail(); err != nil {
		return nil, err
	}
	todo, err := l.loadInFlight()
	if err != nil {
		return nil, err
	}
	go l.run()
	if err := l.finishInFlight(ctx, todo); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// recoverTail verifies the latest checkpoint and everything after it, and
// leaves l.rng, l.prevLeaf, l.size and l.cp describing the head.
func (l *Ledger) recoverTail() error {
	var (
		size, cpSize uint64
		cpFound      bool
		newNodes     = map[compact.NodeID][]byte{}
		indexFixes   [][]byte // index keys of the tail that a split commit lost
	)
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		if size, err = headSize(txn); err != nil {
			return err
		}
		if k := lastKey(txn, pfxCheckpoint); k != nil {
			note, err := getValue(txn, k)
			if err != nil {
				return err
			}
			cp, err := l.ring.verifyCheckpoint(note)
			if err != nil {
				return fmt.Errorf("%w: latest checkpoint: %w", ErrCorrupt, err)
			}
			if !bytes.Equal(k, checkpointKey(cp.Size)) {
				return fmt.Errorf("%w: checkpoint for size %d stored under another key", ErrCorrupt, cp.Size)
			}
			if cp.Origin != l.origin {
				return fmt.Errorf("ledger: log origin is %q but Options.Origin is %q", cp.Origin, l.origin)
			}
			if cp.Size > size {
				return fmt.Errorf("%w: checkpoint covers %d receipts but the log holds %d (receipt at index %d is missing)", ErrCorrupt, cp.Size, size, size)
			}
			cpFound, cpSize, l.cp = true, cp.Size, *cp
		}
		if l.rng, err = rangeAt(txn, cpSize); err != nil {
			return err
		}
		root := hasher.EmptyRoot()
		if cpSize > 0 {
			if root, err = l.rng.GetRootHash(nil); err != nil {
				return err
			}
		}
		if cpFound && !bytes.Equal(root, l.cp.Hash) {
			return fmt.Errorf("%w: stored tree root at size %d does not match the checkpoint", ErrCorrupt, cpSize)
		}
		if cpSize > 0 {
			// The last checkpointed receipt seeds the hash chain; prove it
			// belongs to the checkpointed tree.
			s, err := l.readVerified(txn, cpSize-1, nil)
			if err != nil {
				return err
			}
			p, err := inclusionFromTxn(txn, cpSize-1, cpSize)
			if err != nil {
				return err
			}
			if err := proof.VerifyInclusion(hasher, cpSize-1, cpSize, s.leaf, p, root); err != nil {
				return fmt.Errorf("%w: receipt at index %d is not in the checkpointed tree: %v", ErrCorrupt, cpSize-1, err)
			}
			l.prevLeaf = s.leaf
		}
		for i := cpSize; i < size; i++ {
			s, err := l.readVerified(txn, i, l.prevLeaf)
			if err != nil {
				return err
			}
			if err := l.rng.Append(s.leaf, func(id compact.NodeID, h []byte) {
				if id.Level >= minStoredLevel {
					newNodes[id] = h
				}
			}); err != nil {
				return err
			}
			l.prevLeaf = s.leaf
			indexFixes = append(indexFixes, missingIndexKeys(txn, s.r, i)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.size = size
	if cpFound && cpSize == size {
		return nil
	}
	// Seal the verified tail (or the empty log) with a checkpoint.
	cp, err := l.sign(size)
	if err != nil {
		return err
	}
	err = l.db.Update(func(txn *badger.Txn) error {
		for id, h := range newNodes {
			if err := txn.Set(nodeKey(id), h); err != nil {
				return err
			}
		}
		for i := 0; i < len(indexFixes); i += 2 {
			if err := txn.Set(indexFixes[i], indexFixes[i+1]); err != nil {
				return err
			}
		}
		return txn.Set(checkpointKey(cp.Size), cp.Note)
	})
	if err != nil {
		return fmt.Errorf("ledger: write recovery checkpoint: %w", err)
	}
	if size > cpSize {
		l.log.Info("ledger: verified tail after restart", slog.Uint64("from", cpSize), slog.Uint64("size", size))
	}
	l.cp = cp
	return nil
}

// missingIndexKeys returns, as key/value pairs, the id and index entries
// of receipt r at index i that are not in the store. Only receipts no
// checkpoint covers can lack them: a crash between the parts of a split
// transaction (write) commits receipts before the index entries of their
// batch.
func missingIndexKeys(txn *badger.Txn, r *aarm.Receipt, i uint64) [][]byte {
	var out [][]byte
	if got, err := getU64(txn, idKey(r.ID)); err != nil || got != i {
		out = append(out, idKey(r.ID), be64(i))
	}
	f := fieldsOf(r)
	if _, err := txn.Get(timeKey(f.timeNano, i)); err != nil && !listedAt(txn, keyU64(pfxTime, uint64(timeBucket(f.timeNano))), i) {
		out = append(out, timeKey(timeBucket(f.timeNano), i), nil)
	}
	for _, pfx := range valueIndexes {
		v := f.value(pfx)
		if v == "" {
			continue
		}
		if !listedAt(txn, valuePrefix(pfx, v), i) {
			out = append(out, valueKey(pfx, v, i), nil)
		}
	}
	return out
}

// listedAt reports whether the index entry under prefix that would list
// receipt i does.
func listedAt(txn *badger.Txn, prefix []byte, i uint64) bool {
	k := lastAtOrBefore(txn, prefix, be64(i))
	if len(k) != len(prefix)+8 {
		return false
	}
	raw, err := getValue(txn, k)
	if err != nil {
		return false
	}
	idx, ok := postings(k, raw)
	return ok && slices.Contains(idx, i)
}

// rangeAt rebuilds the compact range [0, size) from stored nodes.
func rangeAt(txn *badger.Txn, size uint64) (*compact.Range, error) {
	if size == 0 {
		return rangeFactory.NewEmptyRange(0), nil
	}
	hashes, err := nodeHashes(txn, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(0, size, hashes)
}

// readVerified reads receipt i and checks its signature, its index and (when
// prev is non-nil or i is 0) its prev_hash.
func (l *Ledger) readVerified(txn *badger.Txn, i uint64, prev []byte) (*storedReceipt, error) {
	raw, err := getValue(txn, entryKey(i))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: receipt at index %d is missing", ErrCorrupt, i)
	}
	if err != nil {
		return nil, err
	}
	s, field, err := parseStored(raw)
	if err == nil {
		field, err = l.ring.verifyReceipt(s)
	}
	if err == nil && s.r.Ledger.Index != i {
		field, err = "ledger.index", fmt.Errorf("is %d", s.r.Ledger.Index)
	}
	if err == nil && (prev != nil || i == 0) && s.r.Ledger.PrevHash != prevHashHex(prev) {
		field, err = "ledger.prev_hash", errors.New("does not match the previous receipt's leaf hash")
	}
	if err != nil {
		id := ""
		if s != nil {
			id = s.r.ID
		}
		return nil, fmt.Errorf("%w: index %d receipt %q field %s: %v", ErrCorrupt, i, id, field, err)
	}
	return s, nil
}

// prevHashHex is the prev_hash of the receipt after one with leaf hash prev:
// lowercase hex, and "" for the first receipt.
func prevHashHex(prev []byte) string {
	if prev == nil {
		return ""
	}
	return hex.EncodeToString(prev)
}

// verifyReceipt checks a stored receipt's signature with the ring.
func (ring keyRing) verifyReceipt(s *storedReceipt) (string, error) {
	sig := s.r.Signature
	k, ok := ring[sig.KeyID]
	if !ok {
		return "signature.key_id", fmt.Errorf("unknown key %q", sig.KeyID)
	}
	if sig.Algorithm != k.alg {
		return "signature.algorithm", fmt.Errorf("is %q, key %s is %s", sig.Algorithm, shortID(sig.KeyID), k.alg)
	}
	if err := k.v.VerifySignature(bytes.NewReader(s.sig), bytes.NewReader(s.canonical)); err != nil {
		return "signature.value", fmt.Errorf("does not verify with key %s", shortID(sig.KeyID))
	}
	return "", nil
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func (l *Ledger) sign(size uint64) (SignedCheckpoint, error) {
	root := hasher.EmptyRoot()
	if size > 0 {
		var err error
		if root, err = l.rng.GetRootHash(nil); err != nil {
			return SignedCheckpoint{}, err
		}
	}
	return signCheckpoint(l.signer, l.keyID, log.Checkpoint{Origin: l.origin, Size: size, Hash: root})
}

// inFlightAction is an action marked in flight: let through, no outcome yet.
type inFlightAction struct {
	action string
	from   uint64 // index of the receipt that let it through
}

// loadInFlight reads the in-flight markers into l.pending.
func (l *Ledger) loadInFlight() ([]inFlightAction, error) {
	var todo []inFlightAction
	l.pending = map[string]bool{}
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(pfxPending)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != 8 {
				return fmt.Errorf("%w: malformed in-flight marker %q", ErrCorrupt, it.Item().Key())
			}
			aid := string(it.Item().Key()[len(pfxPending):])
			todo = append(todo, inFlightAction{action: aid, from: beU64(v)})
			l.pending[aid] = true
		}
		return nil
	})
	return todo, err
}

// finishInFlight receipts every action left forwarded without an outcome.
func (l *Ledger) finishInFlight(ctx context.Context, todo []inFlightAction) error {
	for _, p := range todo {
		from, err := l.GetIndex(p.from)
		if err != nil {
			return fmt.Errorf("ledger: in-flight action %q: %w", p.action, err)
		}
		out := &aarm.Receipt{
			Kind:        aarm.KindOutcome,
			Action:      from.Action,
			Requester:   from.Requester,
			Decision:    from.Decision,
			ContextHash: from.ContextHash,
			Approval:    from.Approval,
			Execution:   &aarm.Execution{Status: RestartStatus, Error: RestartError},
		}
		pos, err := l.Append(ctx, out)
		if err != nil {
			return fmt.Errorf("ledger: outcome for in-flight action %q: %w", p.action, err)
		}
		l.log.Warn("ledger: action was in flight at restart; outcome recorded as unknown",
			slog.String("action_id", p.action), slog.Uint64("decision_index", p.from), slog.Uint64("outcome_index", pos.Index))
	}
	return nil
}

func beU64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

var validKinds = map[aarm.ReceiptKind]bool{
	aarm.KindDecision: true, aarm.KindOutcome: true, aarm.KindApproval: true,
	aarm.KindDeferral: true, aarm.KindResolution: true,
}

// Append signs r, adds it to the log and returns its position once it is
// durable (its batch's Badger transaction is committed and synced). It sets
// r's ID (a UUIDv7 when empty), Version, Time (when zero), Ledger and
// Signature; whatever the caller put in Ledger or Signature is replaced.
//
// Concurrent Appends are group-committed: one goroutine writes up to
// Options.MaxBatch receipts in one transaction and one sync, followed by a
// signed checkpoint. An error means the receipt must be treated as not
// written and the action denied (fail closed); after a storage failure every
// later Append returns ErrUnavailable. If ctx ends first Append returns
// ctx.Err() and r is left unchanged, though the receipt may still be
// committed.
//
// Receipts of kind decision (verdict ALLOW or MODIFY), approval (decision
// ALLOW or MODIFY) and resolution (decision ALLOW or MODIFY) mark their
// action as in flight; an outcome, or a resolution that does not forward,
// clears it. Open receipts actions still in flight after a restart.
func (l *Ledger) Append(ctx context.Context, r *aarm.Receipt) (aarm.LedgerPosition, error) {
	if r == nil {
		return aarm.LedgerPosition{}, fmt.Errorf("%w: nil receipt", ErrInvalidReceipt)
	}
	if !validKinds[r.Kind] {
		return aarm.LedgerPosition{}, fmt.Errorf("%w: kind %q", ErrInvalidReceipt, r.Kind)
	}
	req := &appendReq{r: *r, done: make(chan struct{})}
	if err := l.encode(req); err != nil {
		return aarm.LedgerPosition{}, err
	}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return aarm.LedgerPosition{}, ErrClosed
	}
	select {
	case l.reqs <- req:
		l.closeMu.RUnlock()
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return aarm.LedgerPosition{}, ctx.Err()
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return aarm.LedgerPosition{}, ctx.Err()
	}
	if req.err != nil {
		return aarm.LedgerPosition{}, req.err
	}
	r.ID, r.Version, r.Time = req.r.ID, req.r.Version, req.r.Time
	r.Ledger, r.Signature = req.r.Ledger, req.r.Signature
	return req.r.Ledger, nil
}

// encode fills in what the ledger sets before sequencing (id, version) and
// encodes the canonical bytes with a placeholder position and, when the
// caller left it zero, a placeholder time. It runs in the caller's
// goroutine so that encoding uses every core.
func (l *Ledger) encode(q *appendReq) error {
	r := &q.r
	now := l.now().UTC()
	if r.ID == "" {
		id, err := newReceiptID(now)
		if err != nil {
			return err
		}
		r.ID = id
	} else {
		q.callerID = true
	}
	r.Version = aarm.ReceiptVersion
	r.Signature = nil
	c := *r
	if r.Time.IsZero() {
		q.seqTime = true
		c.Time = l.timePlaceholder
	}
	c.Ledger = aarm.LedgerPosition{PrevHash: l.placeholder}
	var err error
	q.canonical, err = CanonicalBytes(&c)
	return err
}

// Close commits the receipts already queued, stops the writer and returns.
// Appends after Close return ErrClosed. The Badger DB stays open; the
// caller closes it.
func (l *Ledger) Close() error {
	l.once.Do(func() {
		l.closeMu.Lock()
		l.closed = true
		l.closeMu.Unlock()
		close(l.quit)
		<-l.done
	})
	return nil
}

// Size returns the number of durable receipts.
func (l *Ledger) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Checkpoint returns the latest signed checkpoint (written after every group
// commit; for an empty log it commits to the empty tree).
func (l *Ledger) Checkpoint() (SignedCheckpoint, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	cp := l.cp
	cp.Note = append([]byte(nil), cp.Note...)
	cp.Hash = append([]byte(nil), cp.Hash...)
	return cp, nil
}

// KeyID returns the key id of the current signing key.
func (l *Ledger) KeyID() string { return l.keyID }

// idExists reports whether a receipt id is taken. A read error counts as
// taken: the append is refused rather than risk a duplicate.
func idExists(txn *badger.Txn, id string) bool {
	_, err := txn.Get(idKey(id))
	return !errors.Is(err, badger.ErrKeyNotFound)
}

type mark int

const (
	markKeep mark = iota
	markSet
	markClear
)

// inFlight says how a receipt changes its action's in-flight marker.
func inFlight(r *aarm.Receipt) mark {
	forwards := r.Decision != nil && r.Decision.Verdict.Forwards()
	switch r.Kind {
	case aarm.KindDecision:
		if forwards {
			return markSet
		}
	case aarm.KindApproval:
		if r.Approval != nil && r.Approval.Decision.Forwards() {
			return markSet
		}
	case aarm.KindResolution:
		if forwards {
			return markSet
		}
		return markClear
	case aarm.KindOutcome:
		return markClear
	}
	return markKeep
}
