package ledger

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/ledger/internal/canonjson"
	"github.com/gowebpki/jcs"
)

// CanonicalBytes returns the RFC 8785 (JSON Canonicalization Scheme) bytes of
// r with the "signature" member removed. The receipt signature and the Merkle
// leaf are computed over exactly these bytes (docs/receipts.md).
func CanonicalBytes(r *aarm.Receipt) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil receipt", ErrInvalidReceipt)
	}
	if out, err := appendReceipt(make([]byte, 0, 1536), r); err == nil {
		return out, nil
	}
	c := *r
	c.Signature = nil
	raw, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrInvalidReceipt, err)
	}
	// canonjson is byte-equal to jcs.Transform (its tests and
	// TestCanonicalBytesAgainstJCS check this) at a fraction of the cost;
	// verification keeps using jcs, so the two stay independent.
	out, err := canonjson.Append(make([]byte, 0, len(raw)), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: canonicalize: %v", ErrInvalidReceipt, err)
	}
	return out, nil
}

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || canonical) of a
// receipt's canonical bytes.
func LeafHash(canonical []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(canonical)
	return h.Sum(nil)
}

// storedReceipt is a receipt as read back from bytes (the store or a bundle),
// with everything verification needs computed from those bytes, not from a
// decode/re-encode round trip that could hide edits.
type storedReceipt struct {
	r         *aarm.Receipt
	canonical []byte // canonical bytes without the signature
	leaf      []byte
	sig       []byte // decoded signature value (nil when absent or malformed)
}

// parseStored canonicalises raw as given (rejecting duplicate keys and
// invalid JSON), removes the top-level "signature" member and decodes the
// receipt strictly. It returns the first problem as field and error.
func parseStored(raw []byte) (*storedReceipt, string, error) {
	canon, err := jcs.Transform(raw)
	if err != nil {
		return nil, "json", err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(canon, &members); err != nil {
		return nil, "json", err
	}
	_, hasSig := members["signature"]
	delete(members, "signature")
	body, err := json.Marshal(members)
	if err != nil {
		return nil, "json", err
	}
	if body, err = jcs.Transform(body); err != nil {
		return nil, "json", err
	}
	var r aarm.Receipt
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, "json", err
	}
	s := &storedReceipt{r: &r, canonical: body, leaf: LeafHash(body)}
	if !hasSig || r.Signature == nil {
		return s, "signature", fmt.Errorf("%w: no signature", ErrInvalidReceipt)
	}
	if s.sig, err = base64.StdEncoding.DecodeString(r.Signature.Value); err != nil {
		return s, "signature.value", fmt.Errorf("%w: signature value is not base64: %v", ErrInvalidReceipt, err)
	}
	return s, "", nil
}

// newReceiptID returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds,
// then random bits from crypto/rand, so ids sort by creation time.
func newReceiptID(now time.Time) (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[6:]); err != nil {
		return "", fmt.Errorf("receipt id: %w", err)
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(u[:6], ms[2:])
	u[6] = 0x70 | (u[6] & 0x0f) // version 7
	u[8] = 0x80 | (u[8] & 0x3f) // RFC 9562 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:]), nil
}
