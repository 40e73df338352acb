package certs

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aarmproxy/aarm/internal/fsx"
)

// ErrNoTrustStore means Install found no system trust store layout it knows
// under InstallOptions.Root. The error text names the file to copy by hand.
var ErrNoTrustStore = errors.New("certs: no known system trust store")

// ErrNotCA means the file given to Install or Uninstall is not a CA
// certificate.
var ErrNotCA = errors.New("certs: not a CA certificate")

// InstallOptions says where Install and Uninstall act and how they run
// commands. The zero value acts on the real system.
type InstallOptions struct {
	// Root is the filesystem root the system trust store directories are
	// looked up under; "" means "/". Any other root is for tests and for
	// staging images, and then Run must be set too (the update commands
	// would otherwise act on the real system).
	Root string
	// Home is the user's home directory, where NSS databases are looked up;
	// "" means os.UserHomeDir().
	Home string
	// Run runs one command and returns an error that includes its output
	// when it fails; nil runs it with os/exec.
	Run func(name string, args ...string) error
	// LookPath finds a command on PATH; nil means exec.LookPath. It decides
	// whether certutil is available for the NSS databases.
	LookPath func(file string) (string, error)
}

// systemStore is one Linux distribution family's trust anchor layout: drop a
// PEM file into Dir and run Update to regenerate the bundles.
type systemStore struct {
	family string
	dir    string
	ext    string
	update []string
}

// systemStores lists the layouts Install knows, in the order mkcert probes
// them; the first whose anchor directory exists under Root is used.
var systemStores = []systemStore{
	{"RHEL/Fedora", "/etc/pki/ca-trust/source/anchors", ".pem", []string{"update-ca-trust", "extract"}},
	{"Debian/Ubuntu", "/usr/local/share/ca-certificates", ".crt", []string{"update-ca-certificates"}},
	{"Arch", "/etc/ca-certificates/trust-source/anchors", ".crt", []string{"trust", "extract-compat"}},
	{"openSUSE", "/usr/share/pki/trust/anchors", ".pem", []string{"update-ca-certificates"}},
}

// nssHint tells users how to get certutil.
const nssHint = "install certutil (Debian/Ubuntu: apt install libnss3-tools; Fedora/RHEL: dnf install nss-tools; Arch: pacman -S nss) and run aarm ca install again"

// trustTarget is what Install and Uninstall act on, derived from the CA file.
type trustTarget struct {
	caPath   string
	pem      []byte
	baseName string // "aarm-<fp16>" for system anchor files
	nickname string // NSS nickname
}

func (o InstallOptions) withDefaults() (InstallOptions, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Root != "/" && o.Run == nil {
		return o, fmt.Errorf("certs: InstallOptions.Root is %q but Run is nil: the update commands would act on the real system", o.Root)
	}
	if o.Run == nil {
		o.Run = runCommand
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.Home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("certs: home directory for NSS databases: %w", err)
		}
		o.Home = h
	}
	return o, nil
}

// runCommand runs name with args and folds its output into the error.
func runCommand(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// prepare reads the CA certificate and fills in the option defaults.
func prepare(caPath string, opt InstallOptions) (trustTarget, InstallOptions, error) {
	tgt, err := loadTarget(caPath)
	if err != nil {
		return tgt, opt, err
	}
	opt, err = opt.withDefaults()
	return tgt, opt, err
}

func loadTarget(caPath string) (trustTarget, error) {
	if abs, err := filepath.Abs(caPath); err == nil {
		caPath = abs // certutil runs with its own idea of the working dir
	}
	b, err := os.ReadFile(caPath)
	if err != nil {
		return trustTarget{}, fmt.Errorf("certs: read %s: %w (run aarm init first)", caPath, err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		return trustTarget{}, fmt.Errorf("%w: %s: %w", ErrNotCA, caPath, err)
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return trustTarget{}, fmt.Errorf("%w: %s has no CA:TRUE basic constraint", ErrNotCA, caPath)
	}
	fp := fingerprint(c)[:16]
	return trustTarget{
		caPath:   caPath,
		pem:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}),
		baseName: "aarm-" + fp,
		nickname: "aarm local CA " + fp,
	}, nil
}

// Install adds the CA certificate at caPath to the system trust store and to
// the NSS databases (Chrome/Chromium, Firefox) it finds in the user's home,
// and returns one line for each thing it did or skipped.
//
// The system store is found by which anchor directory exists under Root: RHEL
// and Fedora (/etc/pki/ca-trust/source/anchors, update-ca-trust extract),
// Debian and Ubuntu (/usr/local/share/ca-certificates, update-ca-certificates),
// Arch (/etc/ca-certificates/trust-source/anchors, trust extract-compat) or
// openSUSE (/usr/share/pki/trust/anchors, update-ca-certificates). The anchor
// file is named aarm-<first 16 hex digits of the certificate's SHA-256>, so
// installing twice is harmless and several aarm CAs can coexist. Writing there
// usually needs root: the error then says to use sudo. Nothing is escalated.
//
// NSS databases ($HOME/.pki/nssdb, Firefox profiles under ~/.mozilla/firefox
// and the snap packages' equivalents) get the CA through certutil when it is
// on PATH; otherwise a line reports them as skipped and how to fix that.
//
// When no system layout is found the NSS databases are still handled and the
// error wraps ErrNoTrustStore, naming the file to add to the trust store by
// hand.
func Install(caPath string, opt InstallOptions) ([]string, error) {
	tgt, opt, err := prepare(caPath, opt)
	if err != nil {
		return nil, err
	}
	var done []string
	store, found := findStore(opt.Root)
	var sysErr error
	if found {
		lines, err := installSystem(tgt, store, opt)
		done = append(done, lines...)
		if err != nil {
			return done, err
		}
	} else {
		sysErr = fmt.Errorf("%w under %s (looked for %s); add %s to your system's trust anchors by hand",
			ErrNoTrustStore, opt.Root, strings.Join(storeDirs(), ", "), tgt.caPath)
	}
	lines, err := nss(tgt, opt, true)
	done = append(done, lines...)
	return done, errors.Join(sysErr, err)
}

// Uninstall removes what Install added: the aarm anchor file for this CA from
// every known system layout under Root (running that layout's update command)
// and the CA from every NSS database that holds it. It returns one line for
// each thing it did or skipped; finding nothing to remove is not an error.
func Uninstall(caPath string, opt InstallOptions) ([]string, error) {
	tgt, opt, err := prepare(caPath, opt)
	if err != nil {
		return nil, err
	}
	var done []string
	removedAny := false
	for _, s := range systemStores {
		p := filepath.Join(opt.Root, s.dir, tgt.baseName+s.ext)
		err := os.Remove(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, fs.ErrPermission):
			return done, fmt.Errorf("certs: remove %s: %w (run with sudo)", p, err)
		case err != nil:
			return done, fmt.Errorf("certs: remove %s: %w", p, err)
		}
		removedAny = true
		done = append(done, fmt.Sprintf("removed %s (%s system trust store)", p, s.family))
		if err := opt.Run(s.update[0], s.update[1:]...); err != nil {
			return done, fmt.Errorf("certs: %s: %w", strings.Join(s.update, " "), err)
		}
		done = append(done, "ran "+strings.Join(s.update, " "))
	}
	if !removedAny {
		done = append(done, "system trust store: no aarm anchor for this CA found under "+opt.Root)
	}
	lines, err := nss(tgt, opt, false)
	return append(done, lines...), err
}

func storeDirs() []string {
	var ds []string
	for _, s := range systemStores {
		ds = append(ds, s.dir)
	}
	return ds
}

// findStore returns the first known layout whose anchor directory exists.
func findStore(root string) (systemStore, bool) {
	for _, s := range systemStores {
		if fi, err := os.Stat(filepath.Join(root, s.dir)); err == nil && fi.IsDir() {
			return s, true
		}
	}
	return systemStore{}, false
}

func installSystem(tgt trustTarget, s systemStore, opt InstallOptions) ([]string, error) {
	p := filepath.Join(opt.Root, s.dir, tgt.baseName+s.ext)
	var done []string
	err := fsx.WriteNew(p, tgt.pem, 0o644)
	switch {
	case err == nil:
		done = append(done, fmt.Sprintf("wrote %s (%s system trust store)", p, s.family))
	case errors.Is(err, fs.ErrExist):
		have, rerr := os.ReadFile(p)
		if rerr != nil {
			return nil, fmt.Errorf("certs: read existing %s: %w", p, rerr)
		}
		if !bytes.Equal(have, tgt.pem) {
			return nil, fmt.Errorf("certs: %s exists with other content; remove it (run aarm ca uninstall with the CA it belongs to) and install again: %w", p, fs.ErrExist)
		}
		done = append(done, fmt.Sprintf("%s already present (%s system trust store)", p, s.family))
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("certs: write %s: %w (run aarm ca install with sudo)", p, err)
	default:
		return nil, fmt.Errorf("certs: write %s: %w", p, err)
	}
	if err := opt.Run(s.update[0], s.update[1:]...); err != nil {
		return done, fmt.Errorf("certs: %s: %w", strings.Join(s.update, " "), err)
	}
	return append(done, "ran "+strings.Join(s.update, " ")), nil
}

// nssDatabases returns the NSS sql: databases (directories holding
// cert9.db) under home, sorted. Legacy cert8.db (dbm:) databases are not
// handled: every supported Firefox and Chromium uses cert9.db.
func nssDatabases(home string) []string {
	var dbs []string
	add := func(dir string) {
		if fi, err := os.Stat(filepath.Join(dir, "cert9.db")); err == nil && fi.Mode().IsRegular() {
			dbs = append(dbs, dir)
		}
	}
	add(filepath.Join(home, ".pki", "nssdb"))
	add(filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb"))
	for _, pattern := range []string{
		filepath.Join(home, ".mozilla", "firefox", "*"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"),
	} {
		matches, _ := filepath.Glob(pattern) // only ErrBadPattern, impossible here
		for _, m := range matches {
			add(m)
		}
	}
	slices.Sort(dbs)
	return slices.Compact(dbs)
}

// nss adds (install) or removes the CA in every NSS database under Home.
func nss(tgt trustTarget, opt InstallOptions, install bool) ([]string, error) {
	dbs := nssDatabases(opt.Home)
	if len(dbs) == 0 {
		return []string{"NSS: no databases found under " + opt.Home}, nil
	}
	certutil, err := opt.LookPath("certutil")
	if err != nil {
		return []string{fmt.Sprintf("NSS: skipped %d database(s) (%s): certutil not found on PATH; %s",
			len(dbs), strings.Join(dbs, ", "), nssHint)}, nil
	}
	var done []string
	var errs []error
	for _, db := range dbs {
		d := "sql:" + db
		if install {
			if err := opt.Run(certutil, "-A", "-d", d, "-t", "C,,", "-n", tgt.nickname, "-i", tgt.caPath); err != nil {
				errs = append(errs, fmt.Errorf("certs: NSS %s: %w", db, err))
				continue
			}
			done = append(done, fmt.Sprintf("NSS: added %q to %s", tgt.nickname, db))
			continue
		}
		// -L fails when the nickname is absent: then there is nothing to
		// delete, and -D would fail for the same reason.
		if err := opt.Run(certutil, "-L", "-d", d, "-n", tgt.nickname); err != nil {
			done = append(done, fmt.Sprintf("NSS: %q not in %s", tgt.nickname, db))
			continue
		}
		if err := opt.Run(certutil, "-D", "-d", d, "-n", tgt.nickname); err != nil {
			errs = append(errs, fmt.Errorf("certs: NSS %s: %w", db, err))
			continue
		}
		done = append(done, fmt.Sprintf("NSS: removed %q from %s", tgt.nickname, db))
	}
	return done, errors.Join(errs...)
}
