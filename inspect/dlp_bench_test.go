package inspect

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchBody64KiB returns a realistic 64 KiB JSON request body (an LLM chat
// request carrying issue text, e-mail addresses and a few ids) and its
// fields as the decoder would produce them.
func benchBody64KiB() (string, []Field) {
	rng := rand.New(rand.NewPCG(7, 9))
	words := strings.Fields("the issue report login page fails when users with a long email address try to reset their password after the session expired and the server returns an error code please investigate customer impact deploy rollback pipeline cache token header request response timeout retry budget quarter invoice")
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var msgs []msg
	var fields []Field
	size := 0
	for i := 0; size < 64<<10; i++ {
		var b strings.Builder
		for j := 0; j < 120; j++ {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
			if j%40 == 0 {
				fmt.Fprintf(&b, "user%d@example.com issue #%d id %d ", rng.IntN(1000), rng.IntN(5000), rng.Int64())
			}
		}
		m := msg{Role: "user", Content: b.String()}
		msgs = append(msgs, m)
		fields = append(fields, Field{Location: fmt.Sprintf("body.messages.%d.content", i), Value: m.Content})
		size += len(m.Content) + 40
	}
	raw, _ := json.Marshal(map[string]any{"model": "gpt-4o", "messages": msgs})
	return string(raw[:64<<10]), fields
}

func BenchmarkScan64KiB(b *testing.B) {
	_, fields := benchBody64KiB()
	n := 0
	for _, f := range fields {
		n += len(f.Value)
	}
	s := NewScanner(DLPOptions{SessionSecrets: []string{"corp-vault-pass-91"}})
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		s.Scan(fields)
	}
}

func BenchmarkScanRaw64KiB(b *testing.B) {
	raw, _ := benchBody64KiB()
	s := NewScanner(DLPOptions{})
	fields := []Field{{Location: "body", Value: raw}}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		s.Scan(fields)
	}
}

// BenchmarkTaintMatch64KiB10kFingerprints fingerprints and matches a 64 KiB
// outbound body against an index holding 10,000 fingerprinted sources.
func BenchmarkTaintMatch64KiB10kFingerprints(b *testing.B) {
	raw, _ := benchBody64KiB()
	x := NewTaintIndex(TaintOptions{})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		var sb strings.Builder
		for range 60 {
			fmt.Fprintf(&sb, "w%x ", rng.Uint32())
		}
		x.Add(TaintSource{ActionID: fmt.Sprint("a", i), Host: "src.example"}, FingerprintText(sb.String(), x.Options()))
	}
	b.Logf("index holds %d hashes", x.Len())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		x.MatchText(raw, "dest.example")
	}
}

func BenchmarkFingerprint64KiB(b *testing.B) {
	raw, _ := benchBody64KiB()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		FingerprintText(raw, TaintOptions{})
	}
}

// BenchmarkContextChecks64KiB is the per-request cost the gate adds for an
// outbound 64 KiB JSON body: DLP over its fields plus a taint match against
// 10,000 fingerprinted sources. It reports MB/s and the p99 latency.
func BenchmarkContextChecks64KiB(b *testing.B) {
	raw, fields := benchBody64KiB()
	s := NewScanner(DLPOptions{SessionSecrets: []string{"corp-vault-pass-91"}})
	x := NewTaintIndex(TaintOptions{})
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 10_000 {
		var sb strings.Builder
		for range 60 {
			fmt.Fprintf(&sb, "w%x ", rng.Uint32())
		}
		x.Add(TaintSource{ActionID: fmt.Sprint("a", i), Host: "src.example"}, FingerprintText(sb.String(), x.Options()))
	}
	var durs []time.Duration
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		st := time.Now()
		s.Scan(fields)
		x.MatchText(raw, "dest.example")
		durs = append(durs, time.Since(st))
	}
	slices.Sort(durs)
	b.ReportMetric(float64(durs[(len(durs)*99)/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkNewScanner(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewScanner(DLPOptions{Ignore: []string{"Bearer abc"}, SessionSecrets: []string{"corp-vault-pass-91"}})
	}
}
