package rules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultReloadDebounce is how long Watch waits after the last change to the
// policy file before reloading: editors write a file in several steps.
const DefaultReloadDebounce = 250 * time.Millisecond

// maxPolicyFileBytes bounds the policy file read at load.
const maxPolicyFileBytes = 16 << 20

// PolicyStore holds the current policy and replaces it atomically when the
// file changes and the new version is valid. An invalid file never replaces
// a good policy: the last good one stays in force and the error (with
// file:line) is kept for Status, /metrics and `aarm policy lint`.
type PolicyStore struct {
	path     string
	fallback []byte
	// OnReload, when set before Watch or Reload are called, is told the
	// result of every reload attempt (for metrics).
	OnReload func(ok bool, err error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Debounce defaults to DefaultReloadDebounce.
	Debounce time.Duration

	cur atomic.Pointer[Policy]

	mu     sync.Mutex // serialises reloads and guards status
	status PolicyStatus
}

// PolicyStatus reports the store's state.
type PolicyStatus struct {
	Ref         PolicyRefStatus `json:"policy"`
	Source      string          `json:"source"`
	LoadedAt    time.Time       `json:"loaded_at"`
	LastAttempt time.Time       `json:"last_attempt"`
	LastError   string          `json:"last_error,omitempty"`
	Reloads     uint64          `json:"reloads"`
	Failures    uint64          `json:"failures"`
}

// PolicyRefStatus is the identity of the policy in force.
type PolicyRefStatus struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// NewPolicyStore loads the policy at path, or fallback (the embedded default
// policy) when path does not exist. A file that exists but is invalid is an
// error: the proxy must not start on a policy other than the one configured.
func NewPolicyStore(path string, fallback []byte) (*PolicyStore, error) {
	s := &PolicyStore{path: path, fallback: fallback}
	p, src, err := s.load()
	if err != nil {
		return nil, err
	}
	s.install(p, src, time.Now())
	return s, nil
}

// Current returns the policy in force. It never returns nil for a store made
// by NewPolicyStore.
func (s *PolicyStore) Current() *Policy { return s.cur.Load() }

// Path returns the policy file the store watches.
func (s *PolicyStore) Path() string { return s.path }

func (s *PolicyStore) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *PolicyStore) load() (*Policy, string, error) {
	data, err := readPolicyFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && s.fallback != nil:
		p, perr := ParsePolicy("default policy", s.fallback)
		return p, "embedded default", perr
	case err != nil:
		return nil, "", fmt.Errorf("read policy: %w", err)
	}
	p, err := ParsePolicy(s.path, data)
	return p, s.path, err
}

func readPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxPolicyFileBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d", path, st.Size(), maxPolicyFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPolicyFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPolicyFileBytes {
		return nil, fmt.Errorf("%s grew past the limit of %d bytes", path, maxPolicyFileBytes)
	}
	return data, nil
}

func (s *PolicyStore) install(p *Policy, src string, now time.Time) {
	s.cur.Store(p)
	s.status.Ref = PolicyRefStatus{ID: p.ID, Version: p.Version, SHA256: p.SHA256()}
	s.status.Source = src
	s.status.LoadedAt = now
}

// Reload reads and validates the policy file and, only when it is valid,
// makes it current. On error the last good policy stays in force and the
// error is recorded in Status.
func (s *PolicyStore) Reload() error {
	s.mu.Lock()
	now := time.Now()
	s.status.LastAttempt = now
	p, src, err := s.load()
	if err != nil {
		s.status.Failures++
		s.status.LastError = err.Error()
		s.mu.Unlock()
		s.logger().Error("policy reload failed; keeping the last good policy",
			"file", s.path, "error", err.Error(), "policy_id", s.Current().ID, "policy_sha256", s.Current().SHA256())
		s.notify(false, err)
		return err
	}
	changed := s.Current() == nil || s.Current().SHA256() != p.SHA256()
	s.install(p, src, now)
	s.status.Reloads++
	s.status.LastError = ""
	s.mu.Unlock()
	s.logger().Info("policy loaded", "file", src, "policy_id", p.ID, "policy_version", p.Version,
		"policy_sha256", p.SHA256(), "rules", len(p.Rules), "changed", changed)
	s.notify(true, nil)
	return nil
}

func (s *PolicyStore) notify(ok bool, err error) {
	if s.OnReload != nil {
		s.OnReload(ok, err)
	}
}

// Status returns a snapshot of the store's state.
func (s *PolicyStore) Status() PolicyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Watch reloads the policy whenever its file changes, until ctx is done. It
// watches the file's directory, because editors and config tools replace
// files by rename, and debounces bursts of events. It returns nil when ctx
// ends, or an error if the watcher cannot start.
func (s *PolicyStore) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(s.path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch policy directory %s: %w", dir, err)
	}
	base := filepath.Base(s.path)
	debounce := s.Debounce
	if debounce <= 0 {
		debounce = DefaultReloadDebounce
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// Kubernetes ConfigMap volumes swap a "..data" symlink
			// instead of touching the file itself.
			if name := filepath.Base(ev.Name); name != base && !strings.HasPrefix(name, "..") {
				continue
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove|fsnotify.Chmod) == 0 {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.logger().Warn("policy watcher error", "dir", dir, "error", err.Error())
		case <-timer.C:
			if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
				// Mid-rename, or deleted: keep the policy in force and say so;
				// the next Create event reloads.
				s.mu.Lock()
				s.status.LastError = fmt.Sprintf("%s: file is missing; keeping the last good policy", s.path)
				s.mu.Unlock()
				continue
			}
			_ = s.Reload() // logged and recorded by Reload
		}
	}
}
