package certs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSystem records the commands Install and Uninstall run.
type fakeSystem struct {
	cmds [][]string
	// fail makes the command whose first argument (after the name) matches fail.
	fail map[string]bool
}

func (f *fakeSystem) run(name string, args ...string) error {
	f.cmds = append(f.cmds, append([]string{name}, args...))
	key := name
	if len(args) > 0 {
		key += " " + args[0]
	}
	if f.fail[key] || f.fail[name] {
		return errors.New("exit status 1")
	}
	return nil
}

func noCertutil(string) (string, error) { return "", errors.New("executable file not found in $PATH") }

func haveCertutil(string) (string, error) { return "/usr/bin/certutil", nil }

func TestInstallSystemLayouts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		family string
		dir    string
		file   string // anchor file name with the fingerprint replaced by FP
		update []string
	}{
		{"Debian/Ubuntu", "usr/local/share/ca-certificates", "aarm-FP.crt", []string{"update-ca-certificates"}},
		{"RHEL/Fedora", "etc/pki/ca-trust/source/anchors", "aarm-FP.pem", []string{"update-ca-trust", "extract"}},
		{"Arch", "etc/ca-certificates/trust-source/anchors", "aarm-FP.crt", []string{"trust", "extract-compat"}},
		{"openSUSE", "usr/share/pki/trust/anchors", "aarm-FP.pem", []string{"update-ca-certificates"}},
	}
	for _, tc := range cases {
		t.Run(tc.family, func(t *testing.T) {
			t.Parallel()
			ca := newTestCA(t)
			root, home := t.TempDir(), t.TempDir()
			anchors := filepath.Join(root, tc.dir)
			if err := os.MkdirAll(anchors, 0o755); err != nil {
				t.Fatal(err)
			}
			sys := &fakeSystem{}
			opt := InstallOptions{Root: root, Home: home, Run: sys.run, LookPath: noCertutil}
			anchor := filepath.Join(anchors, strings.Replace(tc.file, "FP", ca.Fingerprint()[:16], 1))

			done, err := Install(ca.Path(), opt)
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			got, err := os.ReadFile(anchor)
			if err != nil {
				t.Fatalf("anchor file: %v (Install said %q)", err, done)
			}
			if string(got) != string(ca.CertPEM()) {
				t.Error("anchor file does not hold the CA certificate")
			}
			if fi, _ := os.Stat(anchor); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
				t.Errorf("anchor mode: got %v, want 0644", fi.Mode().Perm())
			}
			if diff := cmp.Diff([][]string{tc.update}, sys.cmds); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			if !containsLine(done, "wrote "+anchor) || !containsLine(done, "ran "+strings.Join(tc.update, " ")) {
				t.Errorf("report %q does not say it wrote %s and ran %v", done, anchor, tc.update)
			}

			// Installing again keeps the file and reports it present.
			done, err = Install(ca.Path(), opt)
			if err != nil {
				t.Fatalf("second Install: %v", err)
			}
			if !containsLine(done, "already present") {
				t.Errorf("second Install report %q does not say already present", done)
			}

			sys.cmds = nil
			done, err = Uninstall(ca.Path(), opt)
			if err != nil {
				t.Fatalf("Uninstall: %v", err)
			}
			if _, err := os.Stat(anchor); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("anchor after Uninstall: got %v, want it removed", err)
			}
			if diff := cmp.Diff([][]string{tc.update}, sys.cmds); diff != "" {
				t.Errorf("Uninstall commands (-want +got):\n%s", diff)
			}
			if !containsLine(done, "removed "+anchor) {
				t.Errorf("Uninstall report %q does not say it removed %s", done, anchor)
			}

			sys.cmds = nil
			done, err = Uninstall(ca.Path(), opt)
			if err != nil || len(sys.cmds) != 0 || !containsLine(done, "no aarm anchor") {
				t.Errorf("second Uninstall: got (%q, %v) running %v, want nothing to do", done, err, sys.cmds)
			}
		})
	}
}

func TestInstallNoKnownLayout(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sys := &fakeSystem{}
	_, err := Install(ca.Path(), InstallOptions{Root: t.TempDir(), Home: t.TempDir(), Run: sys.run, LookPath: noCertutil})
	if !errors.Is(err, ErrNoTrustStore) {
		t.Fatalf("got %v, want ErrNoTrustStore", err)
	}
	if !strings.Contains(err.Error(), ca.Path()) {
		t.Errorf("error %q does not name the file to copy by hand (%s)", err, ca.Path())
	}
	if len(sys.cmds) != 0 {
		t.Errorf("ran %v, want no commands", sys.cmds)
	}
}

func TestInstallUpdateCommandFails(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/local/share/ca-certificates"), 0o755); err != nil {
		t.Fatal(err)
	}
	sys := &fakeSystem{fail: map[string]bool{"update-ca-certificates": true}}
	done, err := Install(ca.Path(), InstallOptions{Root: root, Home: t.TempDir(), Run: sys.run, LookPath: noCertutil})
	if err == nil || !strings.Contains(err.Error(), "update-ca-certificates") {
		t.Errorf("got %v, want an error naming update-ca-certificates", err)
	}
	if !containsLine(done, "wrote ") {
		t.Errorf("report %q should still say the anchor was written", done)
	}
}

func TestInstallNSS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	root, home := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/local/share/ca-certificates"), 0o755); err != nil {
		t.Fatal(err)
	}
	dbs := []string{
		filepath.Join(home, ".mozilla", "firefox", "abcd.default-release"),
		filepath.Join(home, ".pki", "nssdb"),
		filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb"),
	}
	for _, d := range dbs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(d, "cert9.db"), nil, 0o600)
	}
	// A profile without cert9.db is not a database.
	if err := os.MkdirAll(filepath.Join(home, ".mozilla", "firefox", "Crash Reports"), 0o700); err != nil {
		t.Fatal(err)
	}
	nick := "aarm local CA " + ca.Fingerprint()[:16]

	t.Run("without certutil", func(t *testing.T) {
		t.Parallel()
		sys := &fakeSystem{}
		done, err := Install(ca.Path(), InstallOptions{Root: root + "/", Home: home, Run: sys.run, LookPath: noCertutil})
		if err != nil {
			t.Fatalf("Install: %v", err)
		}
		if !containsLine(done, "NSS: skipped 3 database(s)") || !containsLine(done, "libnss3-tools") {
			t.Errorf("report %q does not say NSS was skipped and how to fix it", done)
		}
		for _, c := range sys.cmds {
			if c[0] != "update-ca-certificates" {
				t.Errorf("ran %v without certutil on PATH", c)
			}
		}
	})

	t.Run("with certutil", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir() // its own root: the sibling subtest installs too
		if err := os.MkdirAll(filepath.Join(root, "usr/local/share/ca-certificates"), 0o755); err != nil {
			t.Fatal(err)
		}
		sys := &fakeSystem{}
		opt := InstallOptions{Root: root, Home: home, Run: sys.run, LookPath: haveCertutil}
		done, err := Install(ca.Path(), opt)
		if err != nil {
			t.Fatalf("Install: %v", err)
		}
		want := [][]string{{"update-ca-certificates"}}
		for _, d := range dbs {
			want = append(want, []string{"/usr/bin/certutil", "-A", "-d", "sql:" + d, "-t", "C,,", "-n", nick, "-i", ca.Path()})
		}
		if diff := cmp.Diff(want, sys.cmds); diff != "" {
			t.Errorf("Install commands (-want +got):\n%s", diff)
		}
		if !containsLine(done, "NSS: added") {
			t.Errorf("report %q does not mention NSS", done)
		}

		// Uninstall lists first and deletes only where the CA is present:
		// here the Firefox profile lacks it.
		sys = &fakeSystem{}
		opt.Run = func(name string, args ...string) error {
			if len(args) > 2 && args[0] == "-L" && strings.Contains(args[2], "firefox") {
				sys.cmds = append(sys.cmds, append([]string{name}, args...))
				return errors.New("certutil: could not find certificate named")
			}
			return sys.run(name, args...)
		}
		done, err = Uninstall(ca.Path(), opt)
		if err != nil {
			t.Fatalf("Uninstall: %v", err)
		}
		want = [][]string{{"update-ca-certificates"}}
		for i, d := range dbs {
			want = append(want, []string{"/usr/bin/certutil", "-L", "-d", "sql:" + d, "-n", nick})
			if i > 0 {
				want = append(want, []string{"/usr/bin/certutil", "-D", "-d", "sql:" + d, "-n", nick})
			}
		}
		if diff := cmp.Diff(want, sys.cmds); diff != "" {
			t.Errorf("Uninstall commands (-want +got):\n%s", diff)
		}
		if !containsLine(done, "not in "+dbs[0]) {
			t.Errorf("Uninstall report %q does not say the Firefox profile lacked the CA", done)
		}
	})
}

func TestInstallNoNSSDatabases(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/pki/ca-trust/source/anchors"), 0o755); err != nil {
		t.Fatal(err)
	}
	sys := &fakeSystem{}
	done, err := Install(ca.Path(), InstallOptions{Root: root, Home: t.TempDir(), Run: sys.run, LookPath: haveCertutil})
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(done, "NSS: no databases found") || len(sys.cmds) != 1 {
		t.Errorf("got report %q and commands %v, want no NSS work", done, sys.cmds)
	}
}

func TestInstallRefusesBadInput(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	leafPEM := t.TempDir() + "/leaf.pem"
	c, err := ca.CertFor("example.com")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, leafPEM, pemCert(c.Certificate[0]), 0o644)
	sys := &fakeSystem{}
	cases := []struct {
		name string
		path string
		opt  InstallOptions
		want error
	}{
		{"missing file", filepath.Join(dir, "nope.pem"), InstallOptions{Root: dir, Home: dir, Run: sys.run}, fs.ErrNotExist},
		{"leaf not CA", leafPEM, InstallOptions{Root: dir, Home: dir, Run: sys.run}, ErrNotCA},
	}
	for _, tc := range cases {
		for name, f := range map[string]func(string, InstallOptions) ([]string, error){"Install": Install, "Uninstall": Uninstall} {
			if _, err := f(tc.path, tc.opt); !errors.Is(err, tc.want) {
				t.Errorf("%s %s: got %v, want %v", name, tc.name, err, tc.want)
			}
		}
	}
	if _, err := Install(ca.Path(), InstallOptions{Root: dir, Home: dir}); err == nil || !strings.Contains(err.Error(), "Run is nil") {
		t.Errorf("Root without Run: got %v, want a refusal", err)
	}
	if len(sys.cmds) != 0 {
		t.Errorf("ran %v, want nothing", sys.cmds)
	}
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
