package rules

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aarmproxy/aarm/inspect"
)

func TestCatalogStoreReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pack := filepath.Join(dir, "acme.yaml")
	write := func(op string) {
		t.Helper()
		data := "tool: acme\nhosts: [api.acme.example]\nactions:\n  - operation: " + op + "\n    match: {method: POST, path: /widgets}\n    effect: write\n"
		if err := os.WriteFile(pack, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("widgets.create")
	s, err := NewCatalogStore(CatalogOptions{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("https://api.acme.example/widgets")
	op := func() string {
		req, err := inspect.DecodeRequest("POST", u, http.Header{}, nil, inspect.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Map(req)
		if err != nil {
			t.Fatal(err)
		}
		return m.Actions[0].Operation
	}
	if got := op(); got != "widgets.create" {
		t.Fatalf("got %s", got)
	}
	var results []bool
	s.OnReload = func(ok bool, _ error) { results = append(results, ok) }
	write("widgets.make")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := op(); got != "widgets.make" {
		t.Errorf("after reload: got %s, want widgets.make", got)
	}
	os.WriteFile(pack, []byte("tool: acme\nbogus: 1\n"), 0o600)
	if err := s.Reload(); err == nil {
		t.Fatal("a broken pack reloaded without error")
	}
	if got := op(); got != "widgets.make" {
		t.Errorf("after a broken reload: got %s, want the last good widgets.make", got)
	}
	if len(results) != 2 || !results[0] || results[1] {
		t.Errorf("OnReload: got %v, want [true false]", results)
	}

	ctx := t.Context()
	go s.Watch(ctx)
	time.Sleep(100 * time.Millisecond)
	write("widgets.build")
	deadline := time.Now().Add(5 * time.Second)
	for op() != "widgets.build" {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not reload the edited pack")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
