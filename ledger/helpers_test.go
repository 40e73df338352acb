package ledger

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
)

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		t.Fatalf("badger.Open: %v", err)
	}
	return db
}

type testKey struct {
	priv, pub []byte
	sv        signature.SignerVerifier
}

func newKey(t testing.TB, alg string) testKey {
	t.Helper()
	priv, pub, err := GenerateSigningKey(alg)
	if err != nil {
		t.Fatalf("GenerateSigningKey(%q): %v", alg, err)
	}
	sv, err := LoadSigner(priv)
	if err != nil {
		t.Fatalf("LoadSigner: %v", err)
	}
	return testKey{priv: priv, pub: pub, sv: sv}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openLedger(t testing.TB, db *badger.DB, k testKey, old ...[]byte) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), db, Options{Signer: k.sv, OldPublicKeys: old, Origin: "aarm.test/ledger", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// sampleReceipt returns a decision receipt for one action of one session.
func sampleReceipt(session, action string, v aarm.Verdict) *aarm.Receipt {
	return &aarm.Receipt{
		Kind: aarm.KindDecision,
		Action: aarm.ReceiptAction{
			ID: action, Tool: "github", Operation: "issues.create", Effect: aarm.EffectWrite,
			Target: "acme/web", Destination: aarm.Destination{Host: "api.github.com", Port: "443", Scheme: "https", External: true},
			Method: "POST", Path: "/repos/acme/web/issues",
			Parameters: map[string]any{"title": "bug <b>&", "labels": []any{"x", "y"}, "n": 3.5},
			Timestamp:  time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		},
		Requester: aarm.Identity{Human: "alice", Agent: "triage-bot", Session: session, Scope: []string{"repo:acme/web"},
			Delegation: []string{"user:alice", "agent:triage-bot"}, Verified: true},
		Decision: &aarm.ReceiptDecision{Verdict: v, Rule: "r1", Reason: "test", Confidence: 1,
			Policy: aarm.PolicyRef{ID: "p", Version: "1", SHA256: "00"}},
		ContextHash: "sha256:abcd",
	}
}

func mustAppend(t testing.TB, l *Ledger, r *aarm.Receipt) aarm.LedgerPosition {
	t.Helper()
	pos, err := l.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return pos
}

// hasFailure reports whether rep names index with field (any field when "").
func hasFailure(rep *Report, index uint64, field string) bool {
	for _, f := range rep.Failures {
		if f.Index == index && (field == "" || f.Field == field) {
			return true
		}
	}
	return false
}

func cpBody(origin string, size uint64, hash []byte) log.Checkpoint {
	return log.Checkpoint{Origin: origin, Size: size, Hash: hash}
}

func nodeID(level uint, index uint64) compact.NodeID { return compact.NewNodeID(level, index) }
