package fsx

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteNewCreatesWithContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	want := []byte("secret\n")
	if err := WriteNew(p, want, 0o600); err != nil {
		t.Fatalf("WriteNew: %v", err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got content %q, want %q", got, want)
	}
	assertOnlyFiles(t, dir, "key.pem")
}

func TestWriteNewNeverOverwrites(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(t *testing.T, p string)
	}{
		{"regular file", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T, p string) {
			if runtime.GOOS == "windows" {
				t.Skip("symlinks need privileges on windows")
			}
			if err := os.Symlink(filepath.Join(filepath.Dir(p), "nowhere"), p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			tc.setup(t, p)
			before, _ := os.Lstat(p)
			err := WriteNew(p, []byte("new"), 0o600)
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("got error %v, want one wrapping fs.ErrExist", err)
			}
			after, _ := os.Lstat(p)
			if before.Mode() != after.Mode() || before.Size() != after.Size() {
				t.Errorf("existing %s changed: got mode %v size %d, want mode %v size %d",
					tc.name, after.Mode(), after.Size(), before.Mode(), before.Size())
			}
			if b, err := os.ReadFile(p); err == nil && string(b) != "old" {
				t.Errorf("got content %q, want %q", b, "old")
			}
			assertOnlyFiles(t, dir, "f")
		})
	}
}

// The link step, not the early Exists check, is what refuses: a file that
// appears between the two is still never replaced.
func TestWriteNewRaceExactlyOneWins(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "ca-key.pem")
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = WriteNew(p, fmt.Appendf(nil, "writer %d", i), 0o600)
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("writer %d: got error %v, want nil or fs.ErrExist", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("got %d successful writers, want exactly 1", winners)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("writer %d", winner); string(got) != want {
		t.Errorf("got content %q, want the winner's %q", got, want)
	}
	assertOnlyFiles(t, dir, "ca-key.pem")
}

func TestWriteNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := WriteNew(filepath.Join(dir, "f"), nil, os.ModeSetuid|0o600); !errors.Is(err, ErrBadPerm) {
		t.Errorf("setuid mode: got %v, want ErrBadPerm", err)
	}
	if err := WriteNew(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil || errors.Is(err, fs.ErrExist) {
		t.Errorf("missing directory: got %v, want a create error", err)
	}
}

func TestExists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		path    string
		want    bool
		wantErr bool
	}{
		{"file", file, true, false},
		{"dir", dir, true, false},
		{"missing", filepath.Join(dir, "nope"), false, false},
		// A path through a regular file is ENOTDIR: an error, not absence.
		{"through a file", filepath.Join(file, "x"), false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Exists(tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEnsureDirNotADir(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDir(p, 0o700); !errors.Is(err, ErrNotDir) {
		t.Errorf("got %v, want ErrNotDir", err)
	}
}

func assertOnlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("directory entries (-want +got), temp files must not remain:\n%s", diff)
	}
}
