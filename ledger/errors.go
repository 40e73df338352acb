package ledger

import "errors"

// Sentinel errors. Callers test them with errors.Is; messages wrapped around
// them name the index, receipt id or key concerned.
var (
	// ErrNotFound is returned when a receipt id or index does not exist.
	ErrNotFound = errors.New("ledger: receipt not found")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("ledger: closed")
	// ErrUnavailable is returned by Append once a write has failed: the
	// ledger stops accepting receipts so that the gate fails closed, and
	// must be reopened (which verifies the tail) to continue.
	ErrUnavailable = errors.New("ledger: unavailable after a failed write")
	// ErrNotDurable is returned by Open when Badger was opened without
	// SyncWrites: an Append could then return before its receipt is on disk.
	ErrNotDurable = errors.New("ledger: badger must be opened with SyncWrites(true)")
	// ErrInvalidReceipt is returned for receipts that cannot be appended or
	// decoded (unknown kind, duplicate id, malformed JSON).
	ErrInvalidReceipt = errors.New("ledger: invalid receipt")
	// ErrUnsupportedKey is returned for keys other than ECDSA P-256 and Ed25519.
	ErrUnsupportedKey = errors.New("ledger: unsupported signing key")
	// ErrBadCheckpoint is returned for a checkpoint note that does not parse
	// or whose signature does not verify with a known key.
	ErrBadCheckpoint = errors.New("ledger: bad checkpoint")
	// ErrCorrupt is returned when the stored log fails verification
	// (Open's tail check, proofs over missing nodes). Run Verify for the
	// full list of problems.
	ErrCorrupt = errors.New("ledger: log failed verification")
	// ErrBadRange is returned for proof requests outside the log.
	ErrBadRange = errors.New("ledger: index or tree size out of range")
)
