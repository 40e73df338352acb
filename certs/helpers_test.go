package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// newTestCA creates a CA in a fresh temp dir and loads it.
func newTestCA(t testing.TB, opts ...Option) *CA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Create(dir, "test"); err != nil {
		t.Fatalf("Create: %v", err)
	}
	ca, err := Load(dir, opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return ca
}

// writePair writes a self-signed certificate made from tmpl (with a fresh
// P-256 key) and its key into dir, returning the key's PEM.
func writePair(t *testing.T, dir string, tmpl *x509.Certificate) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = randomSerial()
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})
	if err := os.WriteFile(CAPath(dir), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(KeyPath(dir), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyPEM
}

func caTemplate(notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: "handmade"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// fakeClock is a settable clock for the leaf cache tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
