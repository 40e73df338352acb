package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/dgraph-io/badger/v4"
)

var update = flag.Bool("update", false, "rewrite the test vectors in docs/receipts.md")

const docPath = "../docs/receipts.md"

// vectorBlock matches a published vector: a marker comment, a fenced block
// and a closing marker.
var vectorBlock = regexp.MustCompile("(?s)<!-- vector:([a-z0-9-]+) -->\n```[a-z]*\n(.*?)```\n<!-- /vector -->")

// testVectors builds the published vectors: a fixed Ed25519 key (so that
// signatures are reproducible), two receipts appended to an empty log and
// the bundle exported from it.
func testVectors(t *testing.T) map[string]string {
	t.Helper()
	seed := sha256.Sum256([]byte("aarm receipts test vector"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	sv, err := LoadSigner(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	when := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l, err := Open(context.Background(), db, Options{Signer: sv, Origin: "aarm.example/vectors", Logger: quietLogger(), Now: func() time.Time { return when }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	alignment := 0.82
	decision := &aarm.Receipt{
		ID:   "01956a3c-7c00-7000-8000-000000000001",
		Kind: aarm.KindDecision,
		Time: when,
		Action: aarm.ReceiptAction{
			ID: "act-1", Tool: "github", Operation: "issues.create", Effect: aarm.EffectWrite,
			Target:      "acme/web",
			Destination: aarm.Destination{Host: "api.github.com", Port: "443", Scheme: "https", External: true},
			Method:      "POST", Path: "/repos/acme/web/issues",
			Parameters: map[string]any{
				"title": "Crash on <login> & logout",
				"body":  "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
			},
			ContentDigest: "sha256:8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
			Timestamp:     when.Add(-time.Second),
		},
		Requester: aarm.Identity{
			Human: "alice", Agent: "triage-bot", Session: "ses-1", Scope: []string{"repo:acme/web"},
			Delegation: []string{"user:alice", "agent:triage-bot"}, Verified: true,
		},
		Decision: &aarm.ReceiptDecision{
			Verdict: aarm.Allow, Classification: aarm.ClassContextDependentAllow, Rule: "github-write-own-repo",
			Reason: "write to a repository in scope", RiskLevel: aarm.RiskLow, Confidence: 0.9, Alignment: &alignment,
			Policy: aarm.PolicyRef{ID: "default", Version: "3", SHA256: "sha256:5a1e0b3f7c9d2e4a6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a"},
		},
		ContextHash: "sha256:c0ffee0000000000000000000000000000000000000000000000000000000000",
	}
	outcome := &aarm.Receipt{
		ID:        "01956a3c-7c00-7000-8000-000000000002",
		Kind:      aarm.KindOutcome,
		Time:      when.Add(250 * time.Millisecond),
		Action:    decision.Action,
		Requester: decision.Requester,
		Execution: &aarm.Execution{Status: "forwarded", StatusCode: 201, StartedAt: when, DurationMS: 250,
			ResponseDigest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, r := range []*aarm.Receipt{decision, outcome} {
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	var bundle bytes.Buffer
	if err := l.Export(context.Background(), &bundle, Query{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(bundle.String(), "\n")
	pub := priv.Public()
	keyID, _ := KeyID(pub)
	v := map[string]string{
		"private-key": string(privPEM),
		"public-key":  string(pubPEM),
		"key-id":      keyID + "\n",
		"receipt-0":   lines[0],
		"receipt-1":   lines[1],
		"bundle":      bundle.String(),
	}
	for i, r := range []*aarm.Receipt{decision, outcome} {
		c, err := CanonicalBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		n := string(rune('0' + i))
		v["canonical-"+n] = string(c) + "\n"
		v["leaf-"+n] = hex.EncodeToString(LeafHash(c)) + "\n"
		v["signature-"+n] = r.Signature.Value + "\n"
	}
	cp, _ := l.Checkpoint()
	v["checkpoint"] = string(cp.Note)
	v["root-2"] = hex.EncodeToString(cp.Hash) + "\n"
	return v
}

func TestDocVectors(t *testing.T) {
	want := testVectors(t)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s: %v", docPath, err)
	}
	if *update {
		out := vectorBlock.ReplaceAllFunc(doc, func(m []byte) []byte {
			name := string(vectorBlock.FindSubmatch(m)[1])
			val, ok := want[name]
			if !ok {
				return m
			}
			fence := "```" + regexp.MustCompile("```([a-z]*)\n").FindStringSubmatch(string(m))[1]
			return []byte("<!-- vector:" + name + " -->\n" + fence + "\n" + val + "```\n<!-- /vector -->")
		})
		if err := os.WriteFile(docPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		doc = out
	}
	found := map[string]bool{}
	for _, m := range vectorBlock.FindAllSubmatch(doc, -1) {
		name, got := string(m[1]), string(m[2])
		found[name] = true
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: unknown vector %q", docPath, name)
			continue
		}
		if got != w {
			t.Errorf("%s: vector %q is stale (run go test ./ledger -run TestDocVectors -update)\ngot:\n%s\nwant:\n%s", docPath, name, got, w)
		}
	}
	for name := range want {
		if !found[name] {
			t.Errorf("%s: vector %q is not published", docPath, name)
		}
	}
	// The published bundle verifies with only the published public key.
	rep, err := VerifyBundle(strings.NewReader(want["bundle"]), [][]byte{[]byte(want["public-key"])})
	if err != nil || !rep.OK() {
		t.Fatalf("VerifyBundle(published vectors): %v %s", err, rep)
	}
}
