// Package fsx creates files that hold secrets: with exact permissions whatever
// the umask, atomically (a reader never sees a partial file), durably (file and
// directory are fsynced) and never over an existing file.
//
// The recipe is the one STYLE.md asks for ("Crypto and files"): write a temp
// file opened with O_EXCL in the destination directory, set its mode
// explicitly, fsync it, hard-link it to the final name (link(2) fails with
// EEXIST instead of replacing, which rename(2) would do), remove the temp name
// and fsync the directory.
package fsx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrNotDir is returned by EnsureDir when the path exists and is not a
// directory.
var ErrNotDir = errors.New("fsx: not a directory")

// ErrBadPerm is returned when a mode argument carries bits other than the nine
// permission bits.
var ErrBadPerm = errors.New("fsx: mode must hold permission bits only")

// WriteNew creates path holding data with exactly the permissions perm,
// independent of the process umask. It never replaces an existing file: when
// path already exists (as anything, including a dangling symlink) it returns an
// error that wraps fs.ErrExist and leaves the existing file untouched.
//
// Of several concurrent calls for the same path exactly one succeeds; the
// others get fs.ErrExist. A crash leaves either no file or the complete file at
// path (and possibly a ".<name>.tmp-*" file in the same directory).
//
// The directory must exist. It is fsynced after the link so the new name
// survives a power loss; if that fsync fails the file is in place and the
// error says so.
func WriteNew(path string, data []byte, perm os.FileMode) (err error) {
	if perm&^fs.ModePerm != 0 {
		return fmt.Errorf("%w: %v for %s", ErrBadPerm, perm, path)
	}
	// Cheap early refusal; link(2) below is what actually guarantees it.
	if ok, err := Exists(path); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("fsx: refusing to overwrite %s: %w", path, fs.ErrExist)
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go 1.24+).
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))

	// 0600 at creation: the file is never readable by others, even for the
	// instant before the explicit chmod below sets the final mode.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fsx: create temp file for %s: %w", path, err)
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		// The temp name goes in every case: after a successful link it is a
		// second name of the file, after a failure it is debris.
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("fsx: remove temp file %s: %w", tmp, rmErr)
		}
	}()

	// Chmod on the open file sets the mode exactly; the umask only applies to
	// the mode given at creation.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("fsx: chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("fsx: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsx: fsync %s: %w", tmp, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("fsx: close %s: %w", tmp, cerr)
	}

	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("fsx: refusing to overwrite %s: %w", path, err)
		}
		return fmt.Errorf("fsx: link %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fsx: %s was written but its directory could not be synced: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that a new entry in it is durable. Windows
// cannot open directories for syncing; there the call is a no-op.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	return errors.Join(serr, cerr)
}

// EnsureDir makes sure path is a directory whose mode is no looser than perm.
//
// A directory that does not exist is created (with any missing parents, as
// os.MkdirAll does) and its mode set to exactly perm, whatever the umask.
// Parents created along the way get perm minus the umask.
//
// A directory that already exists is only ever tightened: permission bits it
// has beyond perm are removed (a 0755 data dir becomes 0700 for perm 0700) and
// bits it lacks are not added. This happens silently; the caller asked for a
// private directory and gets one. A path that exists but is not a directory
// (after following symlinks) is an error wrapping ErrNotDir.
func EnsureDir(path string, perm os.FileMode) error {
	if perm&^fs.ModePerm != 0 {
		return fmt.Errorf("%w: %v for %s", ErrBadPerm, perm, path)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(path, perm); err != nil {
			return fmt.Errorf("fsx: create directory %s: %w", path, err)
		}
		if err := os.Chmod(path, perm); err != nil {
			return fmt.Errorf("fsx: chmod %s: %w", path, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("fsx: stat %s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s", ErrNotDir, path)
	}
	if have := fi.Mode().Perm(); have&^perm != 0 {
		if err := os.Chmod(path, have&perm); err != nil {
			return fmt.Errorf("fsx: tighten mode of %s from %v to %v: %w", path, have, have&perm, err)
		}
	}
	return nil
}

// Exists reports whether something exists at path. It does not follow a final
// symlink, so a dangling symlink exists (WriteNew would refuse to replace it).
// Errors other than "does not exist" (permission denied on a parent, I/O) are
// returned, never reported as absence.
func Exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("fsx: stat %s: %w", path, err)
	}
}
