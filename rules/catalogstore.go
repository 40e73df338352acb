package rules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/aarmproxy/aarm/inspect"
)

// CatalogStore holds the rule catalog in force and reloads it when a user
// rule pack changes: the new catalog is loaded and validated whole, then
// swapped atomically; a pack that fails to load never replaces the last good
// catalog (issue 4: hot reload of policy and rule packs).
type CatalogStore struct {
	opts CatalogOptions
	// OnReload, when set, is told the result of every reload attempt.
	OnReload func(ok bool, err error)
	Logger   *slog.Logger

	cur atomic.Pointer[Catalog]
	mu  sync.Mutex // serialises reloads
}

// NewCatalogStore loads the catalog; an invalid pack is an error at start.
func NewCatalogStore(opts CatalogOptions) (*CatalogStore, error) {
	c, err := LoadCatalog(opts)
	if err != nil {
		return nil, err
	}
	s := &CatalogStore{opts: opts}
	s.cur.Store(c)
	return s, nil
}

// Current returns the catalog in force.
func (s *CatalogStore) Current() *Catalog { return s.cur.Load() }

// Map maps with the catalog in force (the gate's Mapper).
func (s *CatalogStore) Map(req *inspect.Request) (*Mapping, error) { return s.cur.Load().Map(req) }

// Reload loads the packs again and swaps them in when all of them are valid.
func (s *CatalogStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := LoadCatalog(s.opts)
	if err == nil {
		s.cur.Store(c)
	}
	if s.OnReload != nil {
		s.OnReload(err == nil, err)
	}
	return err
}

// Watch reloads on changes to the user pack files and directories until ctx
// ends. Without user packs it returns at once.
func (s *CatalogStore) Watch(ctx context.Context) error {
	if len(s.opts.Paths) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	for _, p := range s.opts.Paths {
		dir := p
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			dir = filepath.Dir(p) // editors replace files by rename: watch the directory
		}
		if err := w.Add(dir); err != nil {
			return err
		}
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-w.Events:
			if filepath.Ext(ev.Name) == ".yaml" || filepath.Ext(ev.Name) == ".yml" {
				debounce = time.After(DefaultReloadDebounce)
			}
		case err := <-w.Errors:
			log.Warn("rule pack watch", "err", err)
		case <-debounce:
			if err := s.Reload(); err != nil {
				log.Error("rule pack reload failed; keeping the last good catalog", "err", err)
			} else {
				log.Info("rule packs reloaded")
			}
		}
	}
}
