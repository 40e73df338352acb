package ledger

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
)

// Query selects receipts for List and Export. Zero fields do not filter.
type Query struct {
	// Session, ActionID, Verdict ("ALLOW", "step_up", ...) and Kind select
	// by exact value; the most selective one set drives the index scan.
	Session, ActionID, Verdict, Kind string
	// Since (inclusive) and Until (exclusive) bound the receipt time.
	Since, Until time.Time
	// After, when non-zero, is a cursor: forward listings return only
	// indexes greater than After, Reverse listings only smaller ones.
	After uint64
	// Limit bounds the number of receipts returned; 0 means no bound.
	Limit int
	// Reverse lists newest first.
	Reverse bool
}

func (q Query) isZero() bool {
	return q.Session == "" && q.ActionID == "" && q.Verdict == "" && q.Kind == "" &&
		q.Since.IsZero() && q.Until.IsZero() && q.After == 0 && q.Limit == 0
}

// Get returns the receipt with the given receipt id. It decodes the stored
// receipt without verifying it; Verify checks the log.
func (l *Ledger) Get(id string) (*aarm.Receipt, error) {
	var r *aarm.Receipt
	err := l.db.View(func(txn *badger.Txn) error {
		i, err := getU64(txn, idKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: receipt id %q", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		r, err = getReceipt(txn, i)
		return err
	})
	return r, err
}

// GetIndex returns the receipt at log index i, decoded without verification.
func (l *Ledger) GetIndex(i uint64) (*aarm.Receipt, error) {
	var r *aarm.Receipt
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		r, err = getReceipt(txn, i)
		return err
	})
	return r, err
}

func getReceipt(txn *badger.Txn, i uint64) (*aarm.Receipt, error) {
	raw, err := getValue(txn, entryKey(i))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: index %d", ErrNotFound, i)
	}
	if err != nil {
		return nil, err
	}
	return decodeReceipt(raw, i)
}

func decodeReceipt(raw []byte, i uint64) (*aarm.Receipt, error) {
	var r aarm.Receipt
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: index %d: %v", ErrCorrupt, i, err)
	}
	return &r, nil
}

// List returns the receipts matching q in log order (newest first when
// q.Reverse), using the session, action, verdict, kind or time index.
func (l *Ledger) List(q Query) ([]*aarm.Receipt, error) {
	var out []*aarm.Receipt
	err := l.db.View(func(txn *badger.Txn) error {
		return scan(txn, q, ^uint64(0), func(_ uint64, _ []byte, r *aarm.Receipt) error {
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// errStop ends a scan early without error.
var errStop = errors.New("stop")

// scan calls fn for each receipt matching q with an index below limit.
func scan(txn *badger.Txn, q Query, limit uint64, fn func(i uint64, raw []byte, r *aarm.Receipt) error) error {
	if q.Verdict != "" {
		v, err := aarm.ParseVerdict(q.Verdict)
		if err != nil {
			return fmt.Errorf("%w: query: %v", ErrInvalidReceipt, err)
		}
		q.Verdict = v.String()
	}
	var prefix []byte
	timeScan := false
	switch {
	case q.ActionID != "":
		prefix = valuePrefix(pfxAction, q.ActionID)
	case q.Session != "":
		prefix = valuePrefix(pfxSession, q.Session)
	case q.Verdict != "":
		prefix = valuePrefix(pfxVerdict, q.Verdict)
	case q.Kind != "":
		prefix = valuePrefix(pfxKind, q.Kind)
	case !q.Since.IsZero() || !q.Until.IsZero():
		prefix, timeScan = []byte(pfxTime), true
	default:
		prefix = []byte(pfxEntry)
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = q.Reverse
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()

	seek := append([]byte(nil), prefix...)
	switch {
	case timeScan && !q.Reverse && !q.Since.IsZero():
		seek = append(seek, be64(uint64(timeBucket(q.Since.UnixNano())))...)
	case timeScan && q.Reverse && !q.Until.IsZero():
		seek = append(seek, be64(uint64(q.Until.UnixNano()))...)
	case timeScan && q.Reverse:
		seek = append(seek, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	case !q.Reverse && q.After > 0:
		seek = append(seek, be64(q.After+1)...)
	case q.Reverse && q.After > 0:
		seek = append(seek, be64(q.After-1)...)
		seek = append(seek, 0xff)
	case q.Reverse && limit != ^uint64(0):
		seek = append(seek, be64(limit)...)
	case q.Reverse:
		seek = append(seek, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	}
	valueScan := !timeScan && string(prefix) != pfxEntry
	if valueScan && !q.Reverse && q.After > 0 {
		// The entry holding After+1 may start at or before After.
		seek = lastAtOrBefore(txn, prefix, be64(q.After))
	}
	n := 0
	var list []uint64
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		k := it.Item().Key()
		if len(k) < len(prefix)+8 {
			continue
		}
		if !timeScan && len(k) != len(prefix)+8 {
			continue // a longer value that shares this prefix
		}
		list = append(list[:0], binary.BigEndian.Uint64(k[len(k)-8:]))
		if timeScan && len(k) == len(prefix)+16 {
			// Keys hold a receipt time (older logs) or the millisecond
			// below the times they list.
			t := int64(binary.BigEndian.Uint64(k[len(prefix):]))
			if (!q.Reverse && !q.Until.IsZero() && t >= q.Until.UnixNano()) ||
				(q.Reverse && !q.Since.IsZero() && t+int64(time.Millisecond) <= q.Since.UnixNano()) {
				return nil // past the time window
			}
		}
		if valueScan || timeScan {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var ok bool
			if list, ok = postings(k, v); !ok {
				return fmt.Errorf("%w: malformed index entry %q", ErrCorrupt, k)
			}
			if q.Reverse {
				slices.Reverse(list)
			}
		}
		for _, i := range list {
			if i >= limit || (q.After > 0 && !q.Reverse && i <= q.After) || (q.After > 0 && q.Reverse && i >= q.After) {
				continue
			}
			var raw []byte
			var err error
			if timeScan || valueScan {
				raw, err = getValue(txn, entryKey(i))
			} else {
				raw, err = it.Item().ValueCopy(nil)
			}
			if errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("%w: index entry %q points at missing receipt %d", ErrCorrupt, k, i)
			}
			if err != nil {
				return err
			}
			r, err := decodeReceipt(raw, i)
			if err != nil {
				return err
			}
			if !matches(q, r) {
				continue
			}
			if err := fn(i, raw, r); err != nil {
				if errors.Is(err, errStop) {
					return nil
				}
				return err
			}
			n++
			if q.Limit > 0 && n >= q.Limit {
				return nil
			}
		}
	}
	return nil
}

// lastAtOrBefore returns the greatest key under prefix that is at most
// prefix+suffix, or prefix itself when there is none.
func lastAtOrBefore(txn *badger.Txn, prefix, suffix []byte) []byte {
	opts := badger.DefaultIteratorOptions
	opts.Reverse = true
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(append(append([]byte(nil), prefix...), suffix...))
	// Skip entries of longer values that share the prefix.
	for ; it.ValidForPrefix(prefix); it.Next() {
		if len(it.Item().Key()) == len(prefix)+len(suffix) {
			return it.Item().KeyCopy(nil)
		}
	}
	return append([]byte(nil), prefix...)
}

func matches(q Query, r *aarm.Receipt) bool {
	if q.Session != "" && r.Requester.Session != q.Session {
		return false
	}
	if q.ActionID != "" && r.Action.ID != q.ActionID {
		return false
	}
	if q.Verdict != "" && (r.Decision == nil || r.Decision.Verdict.String() != q.Verdict) {
		return false
	}
	if q.Kind != "" && string(r.Kind) != q.Kind {
		return false
	}
	if !q.Since.IsZero() && r.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !r.Time.Before(q.Until) {
		return false
	}
	return true
}

// BundleVersion names the bundle trailer format (docs/receipts.md).
const BundleVersion = "aarm.bundle/v1"

// BundleTrailer is the last line of an exported bundle.
type BundleTrailer struct {
	Bundle string `json:"bundle"`
	// Checkpoint is the signed checkpoint note the bundle is proved against.
	Checkpoint string `json:"checkpoint"`
	// Complete says the bundle holds every receipt the checkpoint covers;
	// the verifier then recomputes the root instead of checking proofs.
	Complete bool `json:"complete"`
	// Proofs holds an inclusion proof for every receipt of a bundle that
	// is not complete.
	Proofs []BundleProof `json:"proofs,omitempty"`
}

// BundleProof is the RFC 6962 inclusion proof of one receipt of a bundle.
type BundleProof struct {
	Index  uint64   `json:"index"`
	Hashes [][]byte `json:"hashes"`
}

// Export writes a JSONL bundle: the receipts matching q (all when q is
// zero), one stored receipt per line in log order, then a BundleTrailer line
// with the latest checkpoint and, for partial exports, an inclusion proof per
// receipt. It reads one consistent snapshot. VerifyBundle checks a bundle
// with only the public keys. Export is also the archival path: the live log
// is never deleted.
func (l *Ledger) Export(ctx context.Context, w io.Writer, q Query) error {
	q.Reverse = false
	bw := bufio.NewWriterSize(w, 1<<16)
	err := l.db.View(func(txn *badger.Txn) error {
		k := lastKey(txn, pfxCheckpoint)
		if k == nil {
			return fmt.Errorf("%w: no checkpoint", ErrCorrupt)
		}
		note, err := getValue(txn, k)
		if err != nil {
			return err
		}
		cp, err := l.ring.verifyCheckpoint(note)
		if err != nil {
			return fmt.Errorf("%w: latest checkpoint: %w", ErrCorrupt, err)
		}
		full := q.isZero()
		trailer := BundleTrailer{Bundle: BundleVersion, Checkpoint: string(note), Complete: full}
		err = scan(txn, q, cp.Size, func(i uint64, raw []byte, _ *aarm.Receipt) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := bw.Write(raw); err != nil {
				return err
			}
			if err := bw.WriteByte('\n'); err != nil {
				return err
			}
			if !full {
				p, err := inclusionFromTxn(txn, i, cp.Size)
				if err != nil {
					return err
				}
				trailer.Proofs = append(trailer.Proofs, BundleProof{Index: i, Hashes: p})
			}
			return nil
		})
		if err != nil {
			return err
		}
		line, err := json.Marshal(trailer)
		if err != nil {
			return err
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}
