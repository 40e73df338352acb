package ledger

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// InclusionProof returns the RFC 6962 audit path for the receipt at index in
// the tree of the first treeSize receipts, computed from the stored tree
// nodes. Check it with proof.VerifyInclusion (rfc6962 hasher) against the
// root of a checkpoint of that size and the receipt's LeafHash.
func (l *Ledger) InclusionProof(index, treeSize uint64) ([][]byte, error) {
	if treeSize > l.Size() || index >= treeSize {
		return nil, fmt.Errorf("%w: index %d in tree of size %d (log size %d)", ErrBadRange, index, treeSize, l.Size())
	}
	var out [][]byte
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = inclusionFromTxn(txn, index, treeSize)
		return err
	})
	return out, err
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of size1 and size2 receipts (0 < size1 <= size2 <= Size()). Check it with
// proof.VerifyConsistency against the roots of the two checkpoints.
func (l *Ledger) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if size2 > l.Size() || size1 > size2 {
		return nil, fmt.Errorf("%w: sizes %d and %d (log size %d)", ErrBadRange, size1, size2, l.Size())
	}
	var out [][]byte
	err := l.db.View(func(txn *badger.Txn) error {
		nodes, err := proof.Consistency(size1, size2)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadRange, err)
		}
		hashes, err := nodeHashes(txn, nodes.IDs)
		if err != nil {
			return err
		}
		out, err = nodes.Rehash(hashes, hasher.HashChildren)
		return err
	})
	return out, err
}

func inclusionFromTxn(txn *badger.Txn, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRange, err)
	}
	hashes, err := nodeHashes(txn, nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

// Proof is everything a client needs to check that one receipt is in the
// log: its leaf hash, the RFC 6962 audit path and the signed checkpoint the
// path leads to (GET /api/v1/ledger/proof?index=N).
type Proof struct {
	Index      uint64   `json:"index"`
	TreeSize   uint64   `json:"tree_size"`
	LeafHash   []byte   `json:"leaf_hash"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`
}

// Proof returns the inclusion proof of the receipt at index against the
// latest checkpoint, read from one snapshot.
func (l *Ledger) Proof(index uint64) (*Proof, error) {
	var out *Proof
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
		if index >= cp.Size {
			return fmt.Errorf("%w: index %d, checkpoint covers %d receipts", ErrBadRange, index, cp.Size)
		}
		leaf, err := nodeHashes(txn, []compact.NodeID{compact.NewNodeID(0, index)})
		if err != nil {
			return err
		}
		hashes, err := inclusionFromTxn(txn, index, cp.Size)
		if err != nil {
			return err
		}
		out = &Proof{Index: index, TreeSize: cp.Size, LeafHash: leaf[0], Hashes: hashes, Checkpoint: string(note)}
		return nil
	})
	return out, err
}
