package gate

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The context log is an append-only, hash-chained log per session (AARM R2
// recommends one so that tampering with context is detectable). Entry n of a
// session is stored at "ctx/<session>/<n, 8 bytes big-endian>" as JSON with
// prev = hash of entry n-1 and hash = SHA-256(prev || canonical entry without
// hash). Entries are written in batches by one goroutine: appending never
// waits for a disk sync on the request path; the receipts, which are synced
// before anything leaves, carry the hash of each decision's context
// snapshot.

// contextPrefix is the gate's Badger key prefix for context logs.
const contextPrefix = "ctx/"

// contextFlushEvery bounds how long an entry waits before it is written.
const contextFlushEvery = 50 * time.Millisecond

// ErrContextTampered is returned by VerifyContextLog for a broken chain.
var ErrContextTampered = errors.New("context log tampered")

// ContextEntry is one entry of a session's context log.
type ContextEntry struct {
	Seq  uint64         `json:"seq"`
	Time time.Time      `json:"time"`
	Type string         `json:"type"` // intent, action, data, facts, end
	Data map[string]any `json:"data"`
	Prev string         `json:"prev"`
	Hash string         `json:"hash,omitempty"`
}

type contextLog struct {
	db  *badger.DB
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	heads map[string]logHead
	queue []queued
	kick  chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// logHead is where a session's log continues: the next sequence number and
// the hash the next entry links to.
type logHead struct {
	next uint64
	hash string
}

type queued struct {
	key   []byte
	value []byte
}

func newContextLog(db *badger.DB, log *slog.Logger, now func() time.Time) *contextLog {
	l := &contextLog{db: db, log: log, now: now, heads: map[string]logHead{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if db != nil {
		l.wg.Add(1)
		go l.run()
	}
	return l
}

// append adds an entry to a session's log. With no database it only keeps
// the chain head (tests).
func (l *contextLog) append(session, typ string, data map[string]any) {
	if session == "" {
		return
	}
	l.mu.Lock()
	head, ok := l.heads[session]
	if !ok && l.db != nil {
		head = l.loadHead(session)
	}
	e := ContextEntry{Seq: head.next, Time: l.now().UTC(), Type: typ, Data: data, Prev: head.hash}
	e.Hash = entryHash(e)
	l.heads[session] = logHead{next: e.Seq + 1, hash: e.Hash}
	if l.db != nil {
		b, err := json.Marshal(e)
		if err == nil {
			l.queue = append(l.queue, queued{key: contextKey(session, e.Seq), value: b})
		} else {
			l.log.Error("context entry not encoded", "session", session, "err", err)
		}
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// loadHead reads a session's last entry (a session that outlived a restart).
func (l *contextLog) loadHead(session string) logHead {
	var h logHead
	_ = l.db.View(func(txn *badger.Txn) error {
		prefix := []byte(contextPrefix + session + "/")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true, PrefetchValues: true})
		defer it.Close()
		it.Seek(append(append([]byte{}, prefix...), 0xff))
		if !it.Valid() {
			return nil
		}
		return it.Item().Value(func(v []byte) error {
			var e ContextEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			h = logHead{next: e.Seq + 1, hash: e.Hash}
			return nil
		})
	})
	return h
}

func (l *contextLog) run() {
	defer l.wg.Done()
	t := time.NewTicker(contextFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			l.flush()
			return
		case <-t.C:
			l.flush()
		case <-l.kick:
			// Coalesce: let a burst accumulate before writing.
		}
	}
}

func (l *contextLog) flush() {
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	if len(q) == 0 {
		return
	}
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range q {
		if err := wb.Set(e.key, e.value); err != nil {
			l.log.Error("context log write", "err", err)
			return
		}
	}
	if err := wb.Flush(); err != nil {
		l.log.Error("context log write", "err", err)
	}
}

// close writes what is queued and stops the writer.
func (l *contextLog) close() {
	if l.db == nil {
		return
	}
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
}

func contextKey(session string, seq uint64) []byte {
	k := make([]byte, 0, len(contextPrefix)+len(session)+9)
	k = append(k, contextPrefix...)
	k = append(k, session...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

// entryHash is SHA-256 over prev and the entry's JSON without its hash.
func entryHash(e ContextEntry) string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	h := sha256.New()
	h.Write([]byte(e.Prev))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyContextLog checks a session's context log: contiguous sequence
// numbers, each entry's hash, and each entry's link to the one before. It
// names the first broken entry.
func VerifyContextLog(db *badger.DB, session string) (entries int, err error) {
	err = db.View(func(txn *badger.Txn) error {
		prefix := []byte(contextPrefix + session + "/")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		var prev string
		var want uint64
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			var e ContextEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("%w: entry at key %x: %v", ErrContextTampered, key, err)
			}
			if !bytes.Equal(key, contextKey(session, e.Seq)) || e.Seq != want {
				return fmt.Errorf("%w: entry %d found where entry %d belongs (removed or reordered)", ErrContextTampered, e.Seq, want)
			}
			if e.Prev != prev {
				return fmt.Errorf("%w: entry %d does not link to entry %d", ErrContextTampered, e.Seq, want-1)
			}
			if entryHash(e) != e.Hash {
				return fmt.Errorf("%w: entry %d (%s) was altered: hash mismatch", ErrContextTampered, e.Seq, e.Type)
			}
			prev, want = e.Hash, want+1
			entries++
		}
		return nil
	})
	return entries, err
}
