package ledger

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
)

// Key algorithms accepted by GenerateSigningKey.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyEd25519   = "ed25519"
)

// Signature algorithm names written into aarm.Receipt.Signature.Algorithm.
const (
	// AlgECDSAP256SHA256 is ECDSA over P-256 of the SHA-256 of the message,
	// ASN.1 DER encoded (as sigstore's ECDSASigner produces).
	AlgECDSAP256SHA256 = "ecdsa-p256-sha256"
	// AlgEd25519 is pure Ed25519 (RFC 8032) over the message itself.
	AlgEd25519 = "ed25519"
)

// GenerateSigningKey creates a new receipt signing key and returns it as a
// PKCS#8 "PRIVATE KEY" PEM and a PKIX "PUBLIC KEY" PEM. alg is KeyECDSAP256
// (the default when empty) or KeyEd25519. The caller writes the files; the
// private key must be written with mode 0600 and never overwritten.
func GenerateSigningKey(alg string) (privPEM, pubPEM []byte, err error) {
	var priv crypto.Signer
	switch strings.ToLower(strings.TrimSpace(alg)) {
	case "", KeyECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate ecdsa key: %w", err)
		}
		priv = k
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		priv = k
	default:
		return nil, nil, fmt.Errorf("%w: signing key algorithm %q (want %q or %q)", ErrUnsupportedKey, alg, KeyECDSAP256, KeyEd25519)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("marshal public key: %w", err)
	}
	privPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return privPEM, pubPEM, nil
}

// LoadSigner parses a PKCS#8 PEM private key (as GenerateSigningKey writes
// it; "EC PRIVATE KEY" SEC 1 PEMs are accepted too) and returns a sigstore
// SignerVerifier for it: ECDSA P-256 with SHA-256, or pure Ed25519.
func LoadSigner(privPEM []byte) (signature.SignerVerifier, error) {
	block, _ := pem.Decode(privPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block in private key", ErrUnsupportedKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q, want PRIVATE KEY", ErrUnsupportedKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: parse private key: %v", ErrUnsupportedKey, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA curve %s, want P-256", ErrUnsupportedKey, k.Curve.Params().Name)
		}
	case ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("%w: private key type %T (want ECDSA P-256 or Ed25519)", ErrUnsupportedKey, key)
	}
	sv, err := signature.LoadSignerVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	return sv, nil
}

// LoadVerifier parses a PKIX "PUBLIC KEY" PEM and returns a sigstore Verifier
// for it together with its key id (see KeyID).
func LoadVerifier(pubPEM []byte) (signature.Verifier, string, error) {
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		return nil, "", fmt.Errorf("%w: no PEM block in public key", ErrUnsupportedKey)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, "", fmt.Errorf("%w: PEM block %q, want PUBLIC KEY", ErrUnsupportedKey, block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%w: parse public key: %v", ErrUnsupportedKey, err)
	}
	return verifierFor(pub)
}

func verifierFor(pub crypto.PublicKey) (signature.Verifier, string, error) {
	if _, err := algorithmOf(pub); err != nil {
		return nil, "", err
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, "", err
	}
	return v, id, nil
}

// KeyID returns the lowercase hex SHA-256 of the PKIX (SubjectPublicKeyInfo)
// DER encoding of pub. Its first 8 bytes (16 hex digits) are a convenient
// hint for people; the receipts carry the full value.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// algorithmOf names the receipt signature algorithm for a public key.
func algorithmOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA curve %s, want P-256", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return AlgECDSAP256SHA256, nil
	case ed25519.PublicKey:
		return AlgEd25519, nil
	}
	return "", fmt.Errorf("%w: public key type %T", ErrUnsupportedKey, pub)
}

// keyRing holds the verifiers a ledger or verification run accepts, by key id.
type keyRing map[string]ringKey

type ringKey struct {
	alg string
	v   signature.Verifier
}

func newKeyRing(pubPEMs [][]byte) (keyRing, error) {
	ring := keyRing{}
	for i, p := range pubPEMs {
		v, id, err := LoadVerifier(p)
		if err != nil {
			return nil, fmt.Errorf("public key %d: %w", i, err)
		}
		pub, _ := v.PublicKey()
		alg, _ := algorithmOf(pub)
		ring[id] = ringKey{alg: alg, v: v}
	}
	return ring, nil
}
