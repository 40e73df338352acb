package ledger

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
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
