package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/formats/log"
)

// SignedCheckpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint)
// over the receipt log, signed as a C2SP signed note
// (https://c2sp.org/signed-note) with the ledger's receipt key.
type SignedCheckpoint struct {
	// Origin, Size and Hash are the checkpoint body: the log's origin line,
	// the number of receipts and the RFC 6962 root hash of the first Size.
	Origin string
	Size   uint64
	Hash   []byte
	// KeyID is the full key id (KeyID) of the key that signed the note.
	KeyID string
	// Note is the signed note exactly as published and stored.
	Note []byte
}

// noteSigPrefix starts every signature line of a signed note (an em dash and a space).
const noteSigPrefix = "\u2014 "

// signCheckpoint signs the checkpoint body the way rekor's SignedNote.Sign
// does: the signature covers the note text (the body, ending in a newline);
// the signature line carries the key name (the origin) and base64 of the
// 4-byte key hint (the first 4 bytes of SHA-256 of the PKIX public key, i.e.
// of the key id) followed by the signature bytes.
func signCheckpoint(s signature.Signer, keyID string, cp log.Checkpoint) (SignedCheckpoint, error) {
	body := cp.Marshal()
	sig, err := s.SignMessage(bytes.NewReader(body))
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	hint, err := hex.DecodeString(keyID[:8])
	if err != nil {
		return SignedCheckpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	var b bytes.Buffer
	b.Grow(len(body) + len(sig)*2 + 64)
	b.Write(body)
	b.WriteString("\n" + noteSigPrefix + cp.Origin + " ")
	b.WriteString(base64.StdEncoding.EncodeToString(append(hint, sig...)))
	b.WriteString("\n")
	return SignedCheckpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, KeyID: keyID, Note: b.Bytes()}, nil
}

// VerifyCheckpoint checks a signed checkpoint note against the given PKIX
// PEM public keys and returns its contents. Parsing a checkpoint is not
// verifying it: this is the only way this package reads one.
func VerifyCheckpoint(note []byte, pubKeys [][]byte) (*SignedCheckpoint, error) {
	ring, err := newKeyRing(pubKeys)
	if err != nil {
		return nil, err
	}
	return ring.verifyCheckpoint(note)
}

func (ring keyRing) verifyCheckpoint(note []byte) (*SignedCheckpoint, error) {
	split := bytes.LastIndex(note, []byte("\n\n"))
	if split < 0 {
		return nil, fmt.Errorf("%w: no signature block", ErrBadCheckpoint)
	}
	body, sigs := note[:split+1], note[split+2:]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, fmt.Errorf("%w: signature block must end in a newline", ErrBadCheckpoint)
	}
	var cp log.Checkpoint
	rest, err := cp.Unmarshal(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: unexpected extension lines", ErrBadCheckpoint)
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("%w: root hash is %d bytes, want 32", ErrBadCheckpoint, len(cp.Hash))
	}
	var firstErr error = fmt.Errorf("%w: no signature by a known key", ErrBadCheckpoint)
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		name, b64, ok := strings.Cut(strings.TrimPrefix(line, noteSigPrefix), " ")
		if !strings.HasPrefix(line, noteSigPrefix) || !ok {
			return nil, fmt.Errorf("%w: malformed signature line %q", ErrBadCheckpoint, line)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) < 5 {
			return nil, fmt.Errorf("%w: malformed signature in line for %q", ErrBadCheckpoint, name)
		}
		if name != cp.Origin {
			continue
		}
		hint := hex.EncodeToString(raw[:4])
		for id, k := range ring {
			if !strings.HasPrefix(id, hint) {
				continue
			}
			if err := k.v.VerifySignature(bytes.NewReader(raw[4:]), bytes.NewReader(body)); err != nil {
				firstErr = fmt.Errorf("%w: signature by key %s does not verify: %v", ErrBadCheckpoint, id[:16], err)
				continue
			}
			return &SignedCheckpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, KeyID: id, Note: append([]byte(nil), note...)}, nil
		}
	}
	return nil, firstErr
}
