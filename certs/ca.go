// Package certs is aarm's local certificate authority: it creates the CA once
// per data dir (`aarm init`), loads and validates it (`aarm run`), mints
// short-lived per-host leaf certificates for the proxy's TLS interception, and
// installs the CA certificate into the system and NSS trust stores
// (`aarm ca install`).
//
// The CA follows mkcert's template (random 128-bit serial, MaxPathLenZero, a
// CN naming the install) but is stricter (STYLE.md "Crypto and files"): the
// data dir is 0700, the key is PKCS#8 in a 0600 file, both files are created
// atomically through internal/fsx and never overwritten.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/aarmproxy/aarm/internal/fsx"
)

// File names inside the data dir (DESIGN.md §5 "Files in the data dir").
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// Validity and file modes.
const (
	// CAValidity is how long a new CA is valid. Ten years, as mkcert does:
	// the CA is installed in trust stores once and should not silently lapse.
	CAValidity = 10 * 365 * 24 * time.Hour
	// Backdate is how far NotBefore of every certificate lies in the past, so
	// that clients with a slightly slow clock accept it.
	Backdate = time.Hour

	// DirPerm is the mode the data dir is tightened to.
	DirPerm os.FileMode = 0o700
	// KeyPerm is the mode of ca-key.pem.
	KeyPerm os.FileMode = 0o600
	// CertPerm is the mode of ca.pem: public, it is handed to clients.
	CertPerm os.FileMode = 0o644

	// Organization is the Subject O of the CA certificate.
	Organization = "aarm local CA"
)

// Sentinel errors. Errors returned by this package wrap one of them and name
// the file involved and the fix.
var (
	// ErrNoCA means the data dir has neither CA file: run `aarm init`.
	ErrNoCA = errors.New("certs: no CA in data dir")
	// ErrIncompleteCA means exactly one of ca.pem and ca-key.pem exists.
	ErrIncompleteCA = errors.New("certs: incomplete CA")
	// ErrInvalidCA means the CA files exist but do not form a usable CA: they
	// do not parse, the certificate is not a CA, the key does not match it,
	// or it is expired or not yet valid.
	ErrInvalidCA = errors.New("certs: invalid CA")
	// ErrInsecureKey means ca-key.pem is readable or writable by group or
	// others.
	ErrInsecureKey = errors.New("certs: CA key file permissions too open")
)

// CAPath returns the path of the CA certificate in data dir dir.
func CAPath(dir string) string { return filepath.Join(dir, CAFile) }

// KeyPath returns the path of the CA private key in data dir dir.
func KeyPath(dir string) string { return filepath.Join(dir, CAKeyFile) }

// Create makes sure data dir dir holds a CA. name is a label for this install
// (for example the data dir's purpose, or "" for none) that goes into the CA's
// common name, so users can tell aarm CAs apart in a trust store.
//
// If both ca.pem and ca-key.pem exist they are loaded and validated as Load
// does and Create returns false and any validation error; nothing is written.
// If neither exists a new CA is created and Create returns true. If only one
// exists Create returns an error wrapping ErrIncompleteCA and writes nothing:
// a stray key or certificate is never replaced, since the certificate may be
// trusted somewhere already.
//
// dir is created if missing and tightened to DirPerm. The key is written
// first, then the certificate, each through fsx.WriteNew. If several
// processes create the CA at once exactly one creates it; the others get
// (false, nil) when they find it complete, or an error wrapping fs.ErrExist or
// ErrIncompleteCA when they catch it half written.
func Create(dir, name string) (created bool, err error) {
	if err := fsx.EnsureDir(dir, DirPerm); err != nil {
		return false, fmt.Errorf("certs: data dir: %w", err)
	}
	certPath, keyPath := CAPath(dir), KeyPath(dir)
	haveCert, err := fsx.Exists(certPath)
	if err != nil {
		return false, err
	}
	haveKey, err := fsx.Exists(keyPath)
	if err != nil {
		return false, err
	}
	switch {
	case haveCert && haveKey:
		_, err := Load(dir)
		return false, err
	case haveCert:
		return false, fmt.Errorf("%w: %s exists but %s does not; refusing to create a new CA over it (move %s aside if nothing trusts it, then run aarm init)",
			ErrIncompleteCA, certPath, keyPath, certPath)
	case haveKey:
		return false, fmt.Errorf("%w: %s exists but %s does not; refusing to create a new CA over it (move %s aside, then run aarm init)",
			ErrIncompleteCA, keyPath, certPath, keyPath)
	}

	certPEM, keyPEM, err := newCA(name, time.Now())
	if err != nil {
		return false, err
	}
	if err := fsx.WriteNew(keyPath, keyPEM, KeyPerm); err != nil {
		return false, fmt.Errorf("certs: write CA key: %w", err)
	}
	if err := fsx.WriteNew(certPath, certPEM, CertPerm); err != nil {
		return false, fmt.Errorf("certs: write CA certificate (%s was written; remove it before retrying): %w", keyPath, err)
	}
	return true, nil
}

// newCA generates a CA key and self-signed certificate, returned as PEM.
func newCA(name string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode CA public key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			Organization:       []string{Organization},
			OrganizationalUnit: []string{truncate(userAtHost(), 64)},
			CommonName:         commonName(name),
		},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          subjectKeyID(spki),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign CA certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: encode CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// randomSerial returns a random positive 128-bit serial number (RFC 5280
// §4.1.2.2 allows up to 20 octets; 128 bits of entropy as mkcert uses).
func randomSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	b[0] &= 0x7f           // keep it positive after DER encoding without padding
	s := new(big.Int).SetBytes(b[:])
	if s.Sign() == 0 {
		s.SetInt64(1)
	}
	return s
}

// subjectKeyID derives the key identifier from the SubjectPublicKeyInfo as
// RFC 7093 §2 method 1 does: the leftmost 160 bits of its SHA-256.
func subjectKeyID(spki []byte) []byte {
	sum := sha256.Sum256(spki)
	return sum[:20]
}

// commonName builds "aarm local CA <name> <user@host> <random>", at most 64
// characters (RFC 5280 ub-common-name). The random suffix keeps two installs
// on one machine distinguishable in a trust store.
func commonName(name string) string {
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	parts := []string{Organization}
	if n := strings.Join(strings.Fields(name), " "); n != "" {
		parts = append(parts, truncate(n, 16))
	}
	head := strings.Join(parts, " ")
	room := 64 - len(head) - len(suffix) - 2
	if uh := userAtHost(); room > 0 && uh != "" {
		head += " " + truncate(uh, room)
	}
	return head + " " + suffix
}

// userAtHost names the account and machine the CA was made on, as mkcert does.
func userAtHost() string {
	u := "unknown"
	if cur, err := user.Current(); err == nil && cur.Username != "" {
		u = cur.Username
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	return u + "@" + h
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// CA is a loaded, validated certificate authority that mints leaf
// certificates. It is safe for concurrent use.
type CA struct {
	dir     string
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer

	// leafKey is shared by every leaf this CA instance mints: minting costs
	// one signature instead of a key generation plus a signature. The key
	// lives only in memory and dies with the process; anyone able to read it
	// from memory could read the CA key as well, so per-host keys would not
	// protect anything more.
	leafKey *ecdsa.PrivateKey

	cache  *lru.Cache[string, *tls.Certificate]
	flight singleflight.Group
	minted atomic.Uint64

	// now and leafValidity are fields so tests can move the clock and shorten
	// leaves; they are set once by Load and never changed afterwards.
	now          func() time.Time
	leafValidity time.Duration
}

// Option changes how Load sets up a CA.
type Option func(*options)

type options struct {
	cacheSize int
}

// WithCacheSize sets how many leaf certificates the CA keeps (least recently
// used are evicted first). n must be positive; the default is
// DefaultCacheSize.
func WithCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// Load reads and validates the CA in data dir dir: both files parse, the
// certificate is a CA allowed to sign certificates, the key matches it, it is
// currently valid, and (on Unix) the key file is not accessible to group or
// others. Errors name the file and the fix.
//
// The key may be any crypto.Signer x509 can parse (PKCS#8, or SEC 1 "EC
// PRIVATE KEY", or PKCS#1 "RSA PRIVATE KEY"), so a CA created elsewhere can be
// used; Create always writes ECDSA P-256 in PKCS#8.
func Load(dir string, opts ...Option) (*CA, error) {
	o := options{cacheSize: DefaultCacheSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cacheSize <= 0 {
		return nil, fmt.Errorf("certs: cache size must be positive, got %d", o.cacheSize)
	}
	certPath, keyPath := CAPath(dir), KeyPath(dir)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s and %s not found (run aarm init, or pass --dir for another data dir): %w",
			ErrNoCA, certPath, keyPath, certErr)
	case errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s not found but %s exists (restore %s, or move the key aside and run aarm init): %w",
			ErrIncompleteCA, certPath, keyPath, certPath, certErr)
	case errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s not found but %s exists (restore %s, or move the certificate aside and run aarm init): %w",
			ErrIncompleteCA, keyPath, certPath, keyPath, keyErr)
	case certErr != nil:
		return nil, fmt.Errorf("certs: read %s: %w", certPath, certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("certs: read %s: %w", keyPath, keyErr)
	}
	if err := checkKeyPerm(keyPath); err != nil {
		return nil, err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w (replace it with the CA certificate, or move both CA files aside and run aarm init)", ErrInvalidCA, certPath, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w (restore the CA key, or move both CA files aside and run aarm init)", ErrInvalidCA, keyPath, err)
	}
	ca, err := newCAFrom(dir, cert, key, o.cacheSize)
	if err != nil {
		return nil, err
	}
	if err := ca.validate(ca.now()); err != nil {
		return nil, err
	}
	return ca, nil
}

// newCAFrom builds a CA around already parsed material; it does not validate.
func newCAFrom(dir string, cert *x509.Certificate, key crypto.Signer, cacheSize int) (*CA, error) {
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate leaf key: %w", err)
	}
	cache, err := lru.New[string, *tls.Certificate](cacheSize)
	if err != nil {
		return nil, fmt.Errorf("certs: leaf cache: %w", err)
	}
	return &CA{
		dir:          dir,
		cert:         cert,
		certPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:          key,
		leafKey:      leafKey,
		cache:        cache,
		now:          time.Now,
		leafValidity: LeafValidity,
	}, nil
}

// validate checks that the CA can sign leaves that clients will accept at now.
func (ca *CA) validate(now time.Time) error {
	p := CAPath(ca.dir)
	c := ca.cert
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return fmt.Errorf("%w: %s is not a CA certificate (basic constraints CA:TRUE missing); move both CA files aside and run aarm init", ErrInvalidCA, p)
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: %s may not sign certificates (key usage lacks keyCertSign); move both CA files aside and run aarm init", ErrInvalidCA, p)
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: %s is not valid until %s (check the system clock)", ErrInvalidCA, p, c.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(c.NotAfter):
		return fmt.Errorf("%w: %s expired on %s; run aarm ca uninstall, move both CA files aside, run aarm init and aarm ca install", ErrInvalidCA, p, c.NotAfter.UTC().Format(time.RFC3339))
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := ca.key.Public().(equaler)
	if !ok || !pub.Equal(c.PublicKey) {
		return fmt.Errorf("%w: %s does not match the key in %s; restore the matching pair, or move both aside and run aarm init", ErrInvalidCA, KeyPath(ca.dir), p)
	}
	return nil
}

// checkKeyPerm refuses a key file that group or others may access. Windows
// file modes do not express this, so the check is Unix-only.
func checkKeyPerm(keyPath string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return fmt.Errorf("certs: stat %s: %w", keyPath, err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %v; run chmod 600 %s", ErrInsecureKey, keyPath, m, keyPath)
	}
	return nil
}

// parseCertPEM reads exactly one CERTIFICATE block.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the CERTIFICATE block (want exactly one certificate)")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKeyPEM reads one private key block in PKCS#8, SEC 1 or PKCS#1 form.
func parseKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM private key block")
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	return s, nil
}

// Cert returns the CA certificate. Callers must not modify it.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// CertPEM returns a copy of the CA certificate in PEM form, as clients need it
// for SSL_CERT_FILE and friends.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Path returns the path of the CA certificate file (CAPath of the data dir).
func (ca *CA) Path() string { return CAPath(ca.dir) }

// Pool returns a new certificate pool holding only the CA certificate, for
// clients (tests, health checks) that talk to the proxy's intercepted TLS.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Fingerprint returns the hex SHA-256 of the CA certificate's DER encoding.
func (ca *CA) Fingerprint() string { return fingerprint(ca.cert) }

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
