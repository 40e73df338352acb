//go:build unix

package fsx

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// These tests change the process umask, so they do not call t.Parallel: Go
// runs parallel tests only after every sequential top-level test has finished.

func withUmask(t *testing.T, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestWriteNewExactPermsWhateverUmask(t *testing.T) {
	cases := []struct {
		name  string
		umask int
		perm  os.FileMode
	}{
		{"key under loose umask", 0o000, 0o600},
		{"key under usual umask", 0o022, 0o600},
		{"cert under strict umask", 0o077, 0o644},
		{"cert under loose umask", 0o000, 0o644},
		{"read-only key under strict umask", 0o277, 0o400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withUmask(t, tc.umask)
			p := filepath.Join(t.TempDir(), "f")
			if err := WriteNew(p, []byte("x"), tc.perm); err != nil {
				t.Fatalf("WriteNew: %v", err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.perm {
				t.Errorf("got mode %v, want %v", got, tc.perm)
			}
		})
	}
}

func TestEnsureDirModes(t *testing.T) {
	cases := []struct {
		name     string
		umask    int
		existing os.FileMode // 0 = does not exist yet
		perm     os.FileMode
		want     os.FileMode
	}{
		{"new dir under loose umask", 0o000, 0, 0o700, 0o700},
		{"new dir under strict umask gets exact perm", 0o077, 0, 0o750, 0o750},
		{"existing loose dir is tightened", 0o000, 0o755, 0o700, 0o700},
		{"existing world-writable dir is tightened", 0o000, 0o777, 0o700, 0o700},
		{"existing tighter dir is left alone", 0o000, 0o500, 0o700, 0o500},
		{"existing mixed dir loses only extra bits", 0o000, 0o711, 0o750, 0o710},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withUmask(t, tc.umask)
			p := filepath.Join(t.TempDir(), "data")
			if tc.existing != 0 {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.existing); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Chmod(p, 0o700) })
			}
			if err := EnsureDir(p, tc.perm); err != nil {
				t.Fatalf("EnsureDir: %v", err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("got mode %v, want %v", got, tc.want)
			}
		})
	}
}
