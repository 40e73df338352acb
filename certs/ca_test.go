package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestCreateWritesStrictCA(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "aarm")
	before := time.Now()
	created, err := Create(dir, "laptop")
	if err != nil || !created {
		t.Fatalf("Create: got (%v, %v), want (true, nil)", created, err)
	}
	if runtime.GOOS != "windows" {
		for _, f := range []struct {
			path string
			want os.FileMode
		}{{dir, DirPerm}, {KeyPath(dir), KeyPerm}, {CAPath(dir), CertPerm}} {
			fi, err := os.Stat(f.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != f.want {
				t.Errorf("%s: got mode %v, want %v", f.path, got, f.want)
			}
		}
	}
	keyPEM, err := os.ReadFile(KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key file: got %.30q, want a PKCS#8 PRIVATE KEY block", keyPEM)
	}

	ca, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c := ca.Cert()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: got IsCA=%v valid=%v maxPathLen=%d zero=%v, want CA with path length 0",
			c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if got, want := c.KeyUsage, x509.KeyUsageCertSign|x509.KeyUsageCRLSign; got != want {
		t.Errorf("key usage: got %v, want %v", got, want)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key: got %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial: got %v (%d bits), want positive and at most 128 bits", c.SerialNumber, c.SerialNumber.BitLen())
	}
	if len(c.SubjectKeyId) != 20 {
		t.Errorf("subject key id: got %d bytes, want 20", len(c.SubjectKeyId))
	}
	if diff := cmp.Diff([]string{Organization}, c.Subject.Organization); diff != "" {
		t.Errorf("organization (-want +got):\n%s", diff)
	}
	if cn := c.Subject.CommonName; !strings.HasPrefix(cn, "aarm local CA laptop ") || len(cn) > 64 {
		t.Errorf("common name: got %q, want \"aarm local CA laptop ...\" of at most 64 bytes", cn)
	}
	if !c.NotBefore.Before(before) {
		t.Errorf("NotBefore: got %v, want before %v (backdated)", c.NotBefore, before)
	}
	if got := c.NotAfter.Sub(before); got < CAValidity-time.Minute || got > CAValidity+time.Minute {
		t.Errorf("validity after creation: got %v, want about %v", got, CAValidity)
	}
	if got, want := ca.Path(), CAPath(dir); got != want {
		t.Errorf("Path: got %q, want %q", got, want)
	}
	certFile, _ := os.ReadFile(CAPath(dir))
	if !bytes.Equal(ca.CertPEM(), certFile) {
		t.Errorf("CertPEM differs from %s", CAPath(dir))
	}
}

func TestCreateTwiceKeepsFilesByteForByte(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if created, err := Create(dir, ""); err != nil || !created {
		t.Fatalf("first Create: got (%v, %v), want (true, nil)", created, err)
	}
	certBefore, _ := os.ReadFile(CAPath(dir))
	keyBefore, _ := os.ReadFile(KeyPath(dir))
	created, err := Create(dir, "")
	if err != nil || created {
		t.Fatalf("second Create: got (%v, %v), want (false, nil)", created, err)
	}
	certAfter, _ := os.ReadFile(CAPath(dir))
	keyAfter, _ := os.ReadFile(KeyPath(dir))
	if !bytes.Equal(certBefore, certAfter) || !bytes.Equal(keyBefore, keyAfter) {
		t.Error("second Create changed the CA files")
	}
}

func TestCreateRefusesHalfPresentCA(t *testing.T) {
	t.Parallel()
	for _, present := range []string{CAFile, CAKeyFile} {
		t.Run(present, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, present)
			if err := os.WriteFile(p, []byte("keep me"), 0o600); err != nil {
				t.Fatal(err)
			}
			created, err := Create(dir, "")
			if created || !errors.Is(err, ErrIncompleteCA) {
				t.Fatalf("got (%v, %v), want (false, ErrIncompleteCA)", created, err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if b, _ := os.ReadFile(p); string(b) != "keep me" {
				t.Errorf("got %s content %q, want it untouched", present, b)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("got %d files in the data dir, want only %s", len(ents), present)
			}
			if _, err := Load(dir); !errors.Is(err, ErrIncompleteCA) {
				t.Errorf("Load: got %v, want ErrIncompleteCA", err)
			}
		})
	}
}

func TestCreateValidatesExistingCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	writePair(t, dir, caTemplate(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	created, err := Create(dir, "")
	if created || !errors.Is(err, ErrInvalidCA) {
		t.Errorf("got (%v, %v), want (false, ErrInvalidCA) for an expired existing CA", created, err)
	}
}

func TestCreateConcurrentlyMakesOneCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	var wg sync.WaitGroup
	results := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = Create(dir, "") })
	}
	wg.Wait()
	made := 0
	for i := range n {
		if results[i] {
			made++
		}
		// A loser sees the key already linked (fs.ErrExist), or the key
		// without the certificate yet (ErrIncompleteCA), or the whole CA.
		if err := errs[i]; err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, ErrIncompleteCA) {
			t.Errorf("Create %d: unexpected error %v", i, err)
		}
	}
	if made != 1 {
		t.Errorf("got %d Creates reporting created, want 1", made)
	}
	if _, err := Load(dir); err != nil {
		t.Errorf("Load after concurrent Create: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	now := time.Now()
	cases := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		want     error
		mentions []string
	}{
		{"missing", func(*testing.T, string) {}, ErrNoCA, []string{CAFile, "aarm init"}},
		{"cert not PEM", func(t *testing.T, dir string) {
			writePair(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
			mustWrite(t, CAPath(dir), []byte("not a certificate"), 0o644)
		}, ErrInvalidCA, []string{CAFile, "aarm init"}},
		{"two certificates", func(t *testing.T, dir string) {
			writePair(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
			b, _ := os.ReadFile(CAPath(dir))
			mustWrite(t, CAPath(dir), append(b, b...), 0o644)
		}, ErrInvalidCA, []string{CAFile, "exactly one"}},
		{"key not PEM", func(t *testing.T, dir string) {
			writePair(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
			mustWrite(t, KeyPath(dir), []byte("garbage"), 0o600)
		}, ErrInvalidCA, []string{CAKeyFile}},
		{"key of another CA", func(t *testing.T, dir string) {
			other := t.TempDir()
			otherKey := writePair(t, other, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
			writePair(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
			mustWrite(t, KeyPath(dir), otherKey, 0o600)
		}, ErrInvalidCA, []string{"does not match"}},
		{"not a CA", func(t *testing.T, dir string) {
			tmpl := caTemplate(now.Add(-time.Hour), now.Add(time.Hour))
			tmpl.IsCA = false
			tmpl.KeyUsage = 0
			writePair(t, dir, tmpl)
		}, ErrInvalidCA, []string{"not a CA"}},
		{"no cert sign usage", func(t *testing.T, dir string) {
			tmpl := caTemplate(now.Add(-time.Hour), now.Add(time.Hour))
			tmpl.KeyUsage = 1 // digitalSignature only
			writePair(t, dir, tmpl)
		}, ErrInvalidCA, []string{"keyCertSign"}},
		{"expired", func(t *testing.T, dir string) {
			writePair(t, dir, caTemplate(now.Add(-48*time.Hour), now.Add(-time.Hour)))
		}, ErrInvalidCA, []string{"expired"}},
		{"not yet valid", func(t *testing.T, dir string) {
			writePair(t, dir, caTemplate(now.Add(time.Hour), now.Add(48*time.Hour)))
		}, ErrInvalidCA, []string{"not valid until"}},
	}
	if runtime.GOOS != "windows" {
		cases = append(cases, struct {
			name     string
			setup    func(t *testing.T, dir string)
			want     error
			mentions []string
		}{"key readable by others", func(t *testing.T, dir string) {
			writePair(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
			if err := os.Chmod(KeyPath(dir), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrInsecureKey, []string{"chmod 600"}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := Load(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestLoadAcceptsHandmadeCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	writePair(t, dir, caTemplate(now.Add(-time.Hour), now.Add(time.Hour)))
	ca, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if _, err := ca.CertFor("example.com"); err != nil {
		t.Errorf("CertFor with a handmade CA: %v", err)
	}
	if _, err := Load(dir, WithCacheSize(0)); err == nil {
		t.Error("WithCacheSize(0): got nil error, want one")
	}
}

func mustWrite(t *testing.T, p string, b []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, perm); err != nil {
		t.Fatal(err)
	}
}

func TestCommonNameBounded(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "  spaced\tout  ", strings.Repeat("ü", 50), strings.Repeat("x", 200)} {
		cn := commonName(name)
		if len(cn) > 64 || !utf8.ValidString(cn) || !strings.HasPrefix(cn, Organization+" ") {
			t.Errorf("commonName(%q) = %q: want valid UTF-8, at most 64 bytes, starting with %q", name, cn, Organization)
		}
	}
	if cn := commonName("  spaced\tout  "); !strings.HasPrefix(cn, Organization+" spaced out ") {
		t.Errorf("got %q, want whitespace in the name folded", cn)
	}
}
