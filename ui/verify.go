package ui

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/ledger"
)

// check is the outcome of one verification shown on a receipt page.
type check struct {
	// State is "ok", "failed" or "unknown" (could not be checked).
	State  string
	Detail string
}

func checkOK(format string, args ...any) check { return check{"ok", fmt.Sprintf(format, args...)} }
func checkFailed(format string, args ...any) check {
	return check{"failed", fmt.Sprintf(format, args...)}
}
func checkUnknown(format string, args ...any) check {
	return check{"unknown", fmt.Sprintf(format, args...)}
}

// receiptKey is one public key receipts may be signed with.
type receiptKey struct {
	id string
	v  signature.Verifier
}

func loadReceiptKeys(pems [][]byte) ([]receiptKey, error) {
	out := make([]receiptKey, 0, len(pems))
	for i, p := range pems {
		v, id, err := ledger.LoadVerifier(p)
		if err != nil {
			return nil, fmt.Errorf("receipt key %d: %w", i, err)
		}
		out = append(out, receiptKey{id: id, v: v})
	}
	return out, nil
}

// receiptChecks is what the receipt page says about one receipt.
type receiptChecks struct {
	Signature  check
	Inclusion  check
	Checkpoint check
	// CheckpointSize and CheckpointRoot describe the checkpoint used.
	CheckpointSize uint64
	CheckpointRoot string
	LeafHash       string
}

// verifyReceipt checks r's signature with the configured keys and its
// inclusion in the latest checkpoint (whose signature is checked too). The
// ledger stores receipts as it signed them; a decoded receipt re-encodes to
// the same canonical bytes, which is what both checks use.
func (d *dashboard) verifyReceipt(r *aarm.Receipt) receiptChecks {
	var out receiptChecks
	canon, err := ledger.CanonicalBytes(r)
	if err != nil {
		out.Signature = checkFailed("cannot canonicalise the receipt: %v", err)
		out.Inclusion = checkUnknown("no leaf hash")
		return out
	}
	leaf := ledger.LeafHash(canon)
	out.LeafHash = hex.EncodeToString(leaf)
	out.Signature = d.checkSignature(r, canon)

	if d.receipts == nil {
		out.Checkpoint, out.Inclusion = checkUnknown("no ledger configured"), checkUnknown("no ledger configured")
		return out
	}
	cp, err := d.receipts.Checkpoint()
	if err != nil {
		out.Checkpoint, out.Inclusion = checkFailed("cannot read the latest checkpoint: %v", err), checkUnknown("no checkpoint")
		return out
	}
	out.CheckpointSize, out.CheckpointRoot = cp.Size, hex.EncodeToString(cp.Hash)
	root := cp.Hash
	if len(d.keyPEMs) == 0 {
		out.Checkpoint = checkUnknown("no public key configured to check the checkpoint signature")
	} else if vcp, err := ledger.VerifyCheckpoint(cp.Note, d.keyPEMs); err != nil {
		out.Checkpoint = checkFailed("checkpoint signature: %v", err)
		out.Inclusion = checkUnknown("the checkpoint does not verify")
		return out
	} else {
		out.Checkpoint = checkOK("signed by key %s, %d receipts", shortHex(vcp.KeyID), vcp.Size)
		root = vcp.Hash
		out.CheckpointSize, out.CheckpointRoot = vcp.Size, hex.EncodeToString(vcp.Hash)
	}
	idx := r.Ledger.Index
	if idx >= out.CheckpointSize {
		out.Inclusion = checkUnknown("receipt %d is newer than the latest checkpoint (size %d)", idx, out.CheckpointSize)
		return out
	}
	hashes, err := d.receipts.InclusionProof(idx, out.CheckpointSize)
	if err != nil {
		out.Inclusion = checkFailed("no inclusion proof: %v", err)
		return out
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, out.CheckpointSize, leaf, hashes, root); err != nil {
		out.Inclusion = checkFailed("inclusion proof does not verify: %v", err)
		return out
	}
	out.Inclusion = checkOK("included at index %d of %d (%d proof hashes)", idx, out.CheckpointSize, len(hashes))
	return out
}

func (d *dashboard) checkSignature(r *aarm.Receipt, canon []byte) check {
	if r.Signature == nil {
		return checkFailed("the receipt carries no signature")
	}
	if len(d.keys) == 0 {
		return checkUnknown("no public key configured (ReceiptKeys)")
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature.Value)
	if err != nil {
		return checkFailed("signature value is not base64")
	}
	for _, k := range d.keys {
		if k.id != r.Signature.KeyID {
			continue
		}
		if err := k.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(canon)); err != nil {
			return checkFailed("signature does not verify with key %s", shortHex(k.id))
		}
		return checkOK("%s signature by key %s verifies", r.Signature.Algorithm, shortHex(k.id))
	}
	return checkFailed("signed by key %s, which is not a configured key", shortHex(r.Signature.KeyID))
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}
