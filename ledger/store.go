package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Key layout. Every key lives under "ledger/" in the shared Badger database
// (DESIGN.md §4: each package owns a key prefix). Integers are big-endian so
// that Badger's byte order is numeric order.
//
//	ledger/e/<idx8>                      receipt JSON as signed (the log)
//	ledger/n/<level1><idx8>              RFC 6962 node hash, levels >= minStoredLevel
//	ledger/c/<size8>                     signed checkpoint note for tree size
//	ledger/id/<receipt_id>               <idx8>
//	ledger/xs/<session>\x00<idx8>        secondary index by session     } value: posting
//	ledger/xa/<action_id>\x00<idx8>      secondary index by action      } list (below)
//	ledger/xv/<verdict>\x00<idx8>        secondary index by decision verdict
//	ledger/xk/<kind>\x00<idx8>           secondary index by receipt kind
//	ledger/xt/<unixnano8><idx8>          secondary index by receipt time: value: posting list
//	ledger/p/<action_id>                 <idx8> of the receipt that let the action
//	                                     forward while no outcome is recorded yet
//
// The value indexes (xs, xa, xv, xk) hold one key per value per group
// commit: the key names the first receipt of the batch with that value and
// the value lists the others, <idx8> each, ascending (empty when there is
// only one). Batches cover disjoint, increasing index ranges, so reading
// the keys in order and each list in order yields the indexes in order.
// Kinds and verdicts repeat in almost every batch; a key per receipt for
// them cost as much Badger work as the receipt itself (issue 5). The time
// index is grouped the same way by millisecond: its key holds the receipt
// time rounded down to the millisecond (timeBucket) and lists the batch's
// receipts of that millisecond. Logs written before hold exact times, one
// receipt per key; readers accept both.
const (
	pfx           = "ledger/"
	pfxEntry      = pfx + "e/"
	pfxNode       = pfx + "n/"
	pfxCheckpoint = pfx + "c/"
	pfxID         = pfx + "id/"
	pfxSession    = pfx + "xs/"
	pfxAction     = pfx + "xa/"
	pfxVerdict    = pfx + "xv/"
	pfxKind       = pfx + "xk/"
	pfxTime       = pfx + "xt/"
	pfxPending    = pfx + "p/"
)

// hasher is the RFC 6962 SHA-256 tree hasher used for every tree operation.
var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func keyU64(prefix string, v uint64) []byte {
	return append([]byte(prefix), be64(v)...)
}

func entryKey(i uint64) []byte      { return keyU64(pfxEntry, i) }
func checkpointKey(n uint64) []byte { return keyU64(pfxCheckpoint, n) }
func idKey(id string) []byte        { return []byte(pfxID + id) }
func pendingKey(aid string) []byte  { return []byte(pfxPending + aid) }

func nodeKey(id compact.NodeID) []byte {
	k := make([]byte, 0, len(pfxNode)+9)
	k = append(k, pfxNode...)
	k = append(k, byte(id.Level))
	return append(k, be64(id.Index)...)
}

// valueKey builds a secondary index key: prefix, value, NUL, index.
func valueKey(prefix, value string, i uint64) []byte {
	k := make([]byte, 0, len(prefix)+len(value)+9)
	k = append(k, prefix...)
	k = append(k, value...)
	k = append(k, 0)
	return append(k, be64(i)...)
}

// valuePrefix is the scan prefix for every index entry with exactly value.
func valuePrefix(prefix, value string) []byte {
	return append([]byte(prefix+value), 0)
}

// timeBucket rounds a receipt time (Unix nanoseconds) down to the
// millisecond, the time index's grouping.
func timeBucket(unixNano int64) int64 {
	const ms = int64(time.Millisecond)
	r := unixNano % ms
	if r < 0 {
		r += ms
	}
	return unixNano - r
}

func timeKey(unixNano int64, i uint64) []byte {
	k := keyU64(pfxTime, uint64(unixNano))
	return append(k, be64(i)...)
}

// valueIndexes are the prefixes of the indexes by exact value.
var valueIndexes = [...]string{pfxSession, pfxAction, pfxVerdict, pfxKind}

// value is the receipt's value for a value index ("" when not indexed).
func (r *receiptFields) value(prefix string) string {
	switch prefix {
	case pfxSession:
		return r.session
	case pfxAction:
		return r.action
	case pfxVerdict:
		return r.verdict
	case pfxKind:
		return r.kind
	}
	return ""
}

// postings decodes a value index entry: the index in its key, then the
// ones listed in its value. ok is false for a malformed entry (a value that
// is not a whole number of indexes, or one not above the one before).
func postings(key, value []byte) (idx []uint64, ok bool) {
	if len(key) < 8 || len(value)%8 != 0 {
		return nil, false
	}
	idx = make([]uint64, 0, 1+len(value)/8)
	idx = append(idx, binary.BigEndian.Uint64(key[len(key)-8:]))
	for v := value; len(v) > 0; v = v[8:] {
		i := binary.BigEndian.Uint64(v)
		if i <= idx[len(idx)-1] {
			return nil, false
		}
		idx = append(idx, i)
	}
	return idx, true
}

// getU64 reads an 8-byte big-endian value.
func getU64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if err != nil {
		return 0, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("%w: value of %q is %d bytes, want 8", ErrCorrupt, key, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// lastKey returns the greatest key under prefix, or nil when there is none.
func lastKey(txn *badger.Txn, prefix string) []byte {
	opts := badger.DefaultIteratorOptions
	opts.Reverse = true
	opts.PrefetchValues = false
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	seek := append([]byte(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it.Seek(seek)
	if !it.ValidForPrefix([]byte(prefix)) {
		return nil
	}
	return it.Item().KeyCopy(nil)
}

// headSize is the number of receipts: one past the greatest stored index.
func headSize(txn *badger.Txn) (uint64, error) {
	k := lastKey(txn, pfxEntry)
	if k == nil {
		return 0, nil
	}
	if len(k) != len(pfxEntry)+8 {
		return 0, fmt.Errorf("%w: malformed log key %q", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[len(pfxEntry):]) + 1, nil
}

// minStoredLevel is the lowest tree level whose nodes are stored. Leaves
// (level 0) and their parents (level 1) are computed from the receipts
// when a proof needs one (at most one of each per proof): storing them cost
// two Badger entries per receipt, as many as the receipt's indexes (issue 5).
// Logs written before keep their stored leaves and parents, which are used.
const minStoredLevel = 2

// nodeHashes reads the hashes of the given tree nodes: stored ones, and
// below minStoredLevel ones computed from the receipts.
func nodeHashes(txn *badger.Txn, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		v, err := nodeHash(txn, id)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func nodeHash(txn *badger.Txn, id compact.NodeID) ([]byte, error) {
	v, err := getValue(txn, nodeKey(id))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound) && id.Level == 0:
		return leafFromEntry(txn, id.Index)
	case errors.Is(err, badger.ErrKeyNotFound) && id.Level < minStoredLevel:
		l, err := nodeHash(txn, compact.NewNodeID(id.Level-1, 2*id.Index))
		if err != nil {
			return nil, err
		}
		r, err := nodeHash(txn, compact.NewNodeID(id.Level-1, 2*id.Index+1))
		if err != nil {
			return nil, err
		}
		return hasher.HashChildren(l, r), nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, fmt.Errorf("%w: tree node level %d index %d is missing", ErrCorrupt, id.Level, id.Index)
	case err != nil:
		return nil, err
	case len(v) != 32:
		return nil, fmt.Errorf("%w: tree node level %d index %d is %d bytes", ErrCorrupt, id.Level, id.Index, len(v))
	}
	return v, nil
}

// leafFromEntry is the leaf hash of the stored receipt at index i,
// computed from its bytes as a verifier does.
func leafFromEntry(txn *badger.Txn, i uint64) ([]byte, error) {
	raw, err := getValue(txn, entryKey(i))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: receipt at index %d is missing", ErrCorrupt, i)
	}
	if err != nil {
		return nil, err
	}
	s, field, err := parseStored(raw)
	if s == nil {
		return nil, fmt.Errorf("%w: receipt at index %d: %s: %v", ErrCorrupt, i, field, err)
	}
	return s.leaf, nil
}
