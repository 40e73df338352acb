package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const reloadV1 = "policy: {id: p, version: \"1\", default: allow}\n"
const reloadV2 = "policy: {id: p, version: \"2\", default: deny}\n"
const reloadBroken = "policy: {id: p, version: \"3\"}\nrules:\n  - id: a\n    action: perhaps\n"

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	// Write through a temp file and rename, as editors do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyStoreFallbackAndErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := NewPolicyStore(filepath.Join(dir, "policy.yaml"), DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Current().ID; got != "aarm-default" {
		t.Errorf("fallback: got policy %q, want aarm-default", got)
	}
	if got := s.Status().Source; got != "embedded default" {
		t.Errorf("source: got %q", got)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, reloadBroken)
	if _, err := NewPolicyStore(bad, DefaultPolicy); !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), "bad.yaml:4:13") {
		t.Errorf("invalid file at start: got %v, want an ErrInvalidPolicy at bad.yaml:4:13", err)
	}
	if _, err := NewPolicyStore(filepath.Join(dir, "absent.yaml"), nil); err == nil {
		t.Error("absent file without fallback: got no error")
	}
}

func TestPolicyStoreReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, reloadV1)
	s, err := NewPolicyStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var oks, fails atomic.Int32
	s.OnReload = func(ok bool, err error) {
		if ok {
			oks.Add(1)
		} else {
			fails.Add(1)
		}
	}
	writeFile(t, path, reloadBroken)
	if err := s.Reload(); err == nil {
		t.Fatal("broken file: got no error")
	}
	if got := s.Current().Version; got != "1" {
		t.Errorf("after a broken reload: got version %q, want the last good 1", got)
	}
	st := s.Status()
	if st.Failures != 1 || !strings.Contains(st.LastError, "policy.yaml:4:13: rules[0].action") {
		t.Errorf("status: got failures %d last error %q", st.Failures, st.LastError)
	}
	writeFile(t, path, reloadV2)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := s.Current().Version; got != "2" {
		t.Errorf("after a good reload: got version %q, want 2", got)
	}
	if st := s.Status(); st.LastError != "" || st.Reloads != 1 || st.Ref.Version != "2" {
		t.Errorf("status after good reload: %+v", st)
	}
	if oks.Load() != 1 || fails.Load() != 1 {
		t.Errorf("OnReload: got %d ok and %d failed, want 1 and 1", oks.Load(), fails.Load())
	}
}

func TestPolicyStoreWatch(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, reloadV1)
	s, err := NewPolicyStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Debounce = 20 * time.Millisecond
	reloaded := make(chan bool, 16)
	s.OnReload = func(ok bool, err error) { reloaded <- ok }
	done := make(chan error, 1)
	go func() { done <- s.Watch(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	wait := func(want bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case ok := <-reloaded:
				if ok == want {
					return
				}
			case <-deadline:
				t.Fatalf("no reload with ok=%v within 5s", want)
			}
		}
	}
	// The watcher needs a moment to start; keep rewriting until it reacts.
	deadline := time.Now().Add(5 * time.Second)
	for s.Current().Version != "2" && time.Now().Before(deadline) {
		writeFile(t, path, reloadV2)
		select {
		case <-reloaded:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if got := s.Current().Version; got != "2" {
		t.Fatalf("edited file: got version %q, want 2", got)
	}
	writeFile(t, path, reloadBroken)
	wait(false)
	if got := s.Current().Version; got != "2" {
		t.Errorf("broken edit replaced the good policy: got version %q", got)
	}
	writeFile(t, path, reloadV1)
	wait(true)
	if got := s.Current().Version; got != "1" {
		t.Errorf("fixed file: got version %q, want 1", got)
	}
}

// TestPolicyStoreWatchConfigMapSwap covers Kubernetes ConfigMap volumes,
// where policy.yaml is a symlink through "..data", and an update swaps
// "..data" rather than writing policy.yaml.
func TestPolicyStoreWatchConfigMapSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(name, data string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "policy.yaml"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mk("..v1", reloadV1)
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/policy.yaml", filepath.Join(dir, "policy.yaml")); err != nil {
		t.Fatal(err)
	}
	s, err := NewPolicyStore(filepath.Join(dir, "policy.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Debounce = 20 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- s.Watch(t.Context()) }()
	t.Cleanup(func() { <-done })
	mk("..v2", reloadV2)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; s.Current().Version != "2" && time.Now().Before(deadline); i++ {
		tmp := filepath.Join(dir, "..data_tmp")
		os.Remove(tmp)
		target := "..v2"
		if i%2 == 1 { // flip back and forth until the watcher has started
			target = "..v1"
		}
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		if target == "..v2" && s.Current().Version == "2" {
			break
		}
	}
	if got := s.Current().Version; got != "2" {
		t.Errorf("after the ..data swap: got version %q, want 2", got)
	}
}
