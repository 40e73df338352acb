package inspect

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const taintTestCustomers = `[
 {"name": "Margaret Oyelaran-Whitfield", "email": "m.oyelaran@northwind-traders.example", "phone": "+44 20 7946 0958", "notes": "Renewal due in March; prefers invoices by post to the Leeds office"},
 {"name": "Tobias Rennquist", "email": "tobias.rennquist@fjordline.example", "phone": "+47 22 41 68 30", "notes": "Escalated the outage of 14 February, credit of 1200 EUR agreed"},
 {"name": "Priya Venkataraman", "email": "priya.v@lotusbio.example", "phone": "+91 80 4123 9876", "notes": "Pilot of the analytics add-on, decision expected after the board meeting"}
]`

func taintTestIndex(t *testing.T) *TaintIndex {
	t.Helper()
	x := NewTaintIndex(TaintOptions{})
	x.Add(TaintSource{ActionID: "act-crm", Host: "crm.example.com", Level: LevelConfidential, Tags: []string{TagPII}}, FingerprintText(taintTestCustomers, x.Options()))
	return x
}

func TestTaintCatchesReformattedCopies(t *testing.T) {
	t.Parallel()
	x := taintTestIndex(t)
	lines := []string{
		"Margaret Oyelaran-Whitfield, m.oyelaran@northwind-traders.example, +44 20 7946 0958",
		"Tobias Rennquist, tobias.rennquist@fjordline.example, +47 22 41 68 30",
		"Priya Venkataraman, priya.v@lotusbio.example, +91 80 4123 9876",
	}
	rev := slices.Clone(lines)
	slices.Reverse(rev)
	tests := []struct {
		name string
		text string
	}{
		{"verbatim json", taintTestCustomers},
		{"whitespace and case", strings.ToUpper(strings.Join(strings.Fields(taintTestCustomers), "   \n\t"))},
		{"csv values", strings.Join(lines, "\n")},
		{"reordered lines", strings.Join(rev, "\n")},
		{"embedded in json email body", `{"to":"x@evil.example","subject":"fyi","body":"` + strings.Join(rev, `\n`) + `"}`},
		{"prose partial copy", "Hi, as discussed: Escalated the outage of 14 February, credit of 1200 EUR agreed. Thanks"},
		{"fullwidth", strings.Map(func(r rune) rune {
			if r > 0x20 && r < 0x7f {
				return r + 0xFEE0
			}
			return r
		}, lines[0]+" "+lines[1])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := x.MatchText(tc.text, "mail.evil.example")
			if !r.Tainted() {
				t.Fatalf("MatchText: not tainted (matched %d)", r.Matched)
			}
			if r.Level != LevelConfidential || r.Sources[0].ActionID != "act-crm" || !slices.Equal(r.Tags, []string{TagPII}) {
				t.Errorf("got level %v sources %v tags %v, want CONFIDENTIAL act-crm [PII]", r.Level, r.Sources, r.Tags)
			}
		})
	}
}

func TestTaintNoFalsePositives(t *testing.T) {
	t.Parallel()
	x := taintTestIndex(t)
	boiler := NewTaintIndex(TaintOptions{})
	mit := "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated documentation files (the \"Software\"), to deal in the Software without restriction."
	lorem := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua."
	boiler.Add(TaintSource{ActionID: "act-readme", Host: "raw.githubusercontent.com", Level: LevelPublic}, FingerprintText("Project Foo\n\n"+mit+"\n\n"+lorem, boiler.Options()))
	tests := []struct {
		name string
		x    *TaintIndex
		text string
		dest string
	}{
		{"unrelated prose", x, "Please find attached the quarterly roadmap; the team will ship the new dashboard in April.", "mail.example"},
		{"short fragment below minimum", x, "Tobias Rennquist", "mail.example"},
		{"same host is not a flow", x, taintTestCustomers, "CRM.example.com:443"},
		{"boilerplate licence", boiler, "My own tool.\n" + lorem + "\nLicence:\n" + mit, "api.github.com"},
		{"empty", x, "", "mail.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if r := tc.x.MatchText(tc.text, tc.dest); r.Tainted() {
				t.Errorf("MatchText: got tainted %+v, want clean", r)
			}
		})
	}
}

func TestTaintPartialCopyThreshold(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]string, 400)
	for i := range words {
		words[i] = fmt.Sprintf("w%x", rng.Uint32())
	}
	src := strings.Join(words, " ")
	x := NewTaintIndex(TaintOptions{})
	x.Add(TaintSource{ActionID: "a1", Host: "docs.example"}, FingerprintText(src, x.Options()))
	o := x.Options()
	guaranteed := o.MinMatched*o.Window + o.K - 1
	for start := 0; start+guaranteed < len(src); start += 97 {
		// cut on a word boundary, at least `guaranteed` normalised chars
		s := strings.IndexByte(src[start:], ' ') + start + 1
		part := src[s : s+guaranteed+12]
		if r := x.MatchText("note: "+part+" end", "other.example"); !r.Tainted() {
			t.Fatalf("partial copy of %d chars at %d not caught (matched %d)", len(part), s, r.Matched)
		}
	}
}

func TestTaintIndexEviction(t *testing.T) {
	t.Parallel()
	x := NewTaintIndex(TaintOptions{MaxHashes: 200})
	texts := make([]string, 5)
	for i := range texts {
		var b strings.Builder
		for j := range 120 {
			fmt.Fprintf(&b, "doc%d-word%d ", i, j)
		}
		texts[i] = b.String()
		x.Add(TaintSource{ActionID: fmt.Sprint("a", i), Host: "h.example"}, FingerprintText(texts[i], x.Options()))
	}
	if x.Len() > 200 {
		t.Errorf("Len: got %d, want <= 200", x.Len())
	}
	if r := x.MatchText(texts[0], "out.example"); r.Tainted() {
		t.Errorf("oldest source still matched after eviction: %v", r.Sources)
	}
	r := x.MatchText(texts[4], "out.example")
	if !r.Tainted() || r.Sources[0].ActionID != "a4" {
		t.Errorf("newest source: got %+v, want a4", r.Sources)
	}
}

func TestTaintSignal(t *testing.T) {
	t.Parallel()
	x := taintTestIndex(t)
	r := x.MatchText(taintTestCustomers, "evil.example")
	sig := r.Signal()
	want := map[string]any{"sources": []any{"act-crm"}, "hosts": []any{"crm.example.com"}, "classification": "CONFIDENTIAL", "tags": []any{"PII"}}
	for k, v := range want {
		if diff := cmp.Diff(v, sig[k]); diff != "" {
			t.Errorf("signal[%s] (-want +got):\n%s", k, diff)
		}
	}
	if ov, _ := sig["overlap"].(float64); ov < 0.9 {
		t.Errorf("overlap: got %v, want >= 0.9 for a verbatim copy", sig["overlap"])
	}
}

func FuzzFingerprint(f *testing.F) {
	f.Add(taintTestCustomers)
	f.Add("ＡＢＣ short")
	f.Add(`{"a":[1,2,{"b":"c"}],"d":"\u00e9"}`)
	f.Add(strings.Repeat("x", 100))
	f.Fuzz(func(t *testing.T, s string) {
		fp := FingerprintText(s, TaintOptions{})
		if !slices.IsSorted(fp.Hashes) {
			t.Fatal("hashes not sorted")
		}
		if len(slices.Compact(slices.Clone(fp.Hashes))) != len(fp.Hashes) {
			t.Fatal("hashes not unique")
		}
		// A text always matches itself once it has enough hashes.
		x := NewTaintIndex(TaintOptions{})
		x.Add(TaintSource{Host: "a"}, fp)
		if len(fp.Hashes) >= DefaultTaintMinMatched && !x.Match(fp, "b").Tainted() {
			t.Fatal("text does not match itself")
		}
	})
}

func TestTaintIndexSharedHashesSurviveEviction(t *testing.T) {
	t.Parallel()
	common := strings.Repeat("quarterly revenue for the northern region grew by eleven percent ", 3)
	x := NewTaintIndex(TaintOptions{})
	fp := FingerprintText(common, x.Options())
	x.Add(TaintSource{ActionID: "old", Host: "a.example", Level: LevelInternal}, fp)
	x.Add(TaintSource{ActionID: "new", Host: "b.example", Level: LevelRestricted}, fp)
	r := x.MatchText(common, "out.example")
	if len(r.Sources) != 2 || r.Level != LevelRestricted {
		t.Fatalf("got %+v, want both sources, RESTRICTED", r)
	}
	// Matching against b.example must not count b's copy.
	if r := x.MatchText(common, "b.example"); len(r.Sources) != 1 || r.Sources[0].ActionID != "old" {
		t.Errorf("same-host exclusion: got %+v, want only old", r.Sources)
	}
	x.mu.Lock()
	x.evictOldest()
	x.mu.Unlock()
	if r := x.MatchText(common, "out.example"); len(r.Sources) != 1 || r.Sources[0].ActionID != "new" {
		t.Errorf("after evicting old: got %+v, want only new", r.Sources)
	}
	x.mu.Lock()
	x.evictOldest()
	x.mu.Unlock()
	if x.Len() != 0 || len(x.byHash) != 0 || len(x.shared) != 0 {
		t.Errorf("index not empty after evicting all: len %d byHash %d shared %d", x.Len(), len(x.byHash), len(x.shared))
	}
}

func TestTaintIndexBoundsSharing(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("the same status page fetched again and again by a polling agent ", 3)
	x := NewTaintIndex(TaintOptions{})
	fp := FingerprintText(text, x.Options())
	for i := range 200 {
		x.Add(TaintSource{ActionID: fmt.Sprint("a", i), Host: "status.example"}, fp)
	}
	r := x.MatchText(text, "out.example")
	if n := len(r.Sources); n > taintMaxSharing+1 || n == 0 {
		t.Fatalf("got %d sources, want 1..%d", n, taintMaxSharing+1)
	}
	ids := map[string]bool{}
	for _, s := range r.Sources {
		ids[s.ActionID] = true
	}
	if !ids["a0"] || !ids["a199"] {
		t.Errorf("want the first and the newest source kept; got %v", r.Sources)
	}
}
