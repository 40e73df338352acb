// Package ledger keeps aarm's receipts (AARM R5, R6; issue 5): every
// receipt is signed with the instance key through a sigstore
// signature.Signer (ECDSA P-256 by default, Ed25519 optional), chained to
// the previous one by prev_hash, added as a leaf to an RFC 6962 Merkle tree
// (transparency-dev/merkle), and covered by a signed C2SP tlog-checkpoint
// written after every group commit. Verify and VerifyBundle prove offline,
// with only the public keys, that no receipt was edited, removed, inserted
// or reordered. The formats are specified in docs/receipts.md.
//
// Storage is the shared Badger database, under the "ledger/" key prefix.
// The database must be opened with SyncWrites(true): Append returns only
// when its receipt's transaction is committed, and without synced writes a
// committed transaction can still be lost in a crash. Open refuses a
// database without it (ErrNotDurable).
//
// Append is safe for concurrent use. Each receipt is encoded in its
// caller's goroutine, sequenced (time, index, hash chain, Merkle leaf) by
// one goroutine in arrival order and signed on a pool of one signer per
// core while the previous batch syncs; everything sequenced meanwhile is
// then written in a single transaction and a single sync (group commit).
// A failed write stops the ledger (ErrUnavailable) so that the gate fails
// closed. writer.go describes the pipeline, store.go the key layout.
//
// Open recovers after a crash: it verifies the latest checkpoint and every
// receipt after it, rebuilds the compact Merkle range, seals the tail with a
// new checkpoint, and records an outcome of status "unknown" (error
// "process restart") for actions that were let through and have no outcome.
package ledger
