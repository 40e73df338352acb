package inspect

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tidwall/gjson"
)

// dlpCorpusFields flattens a JSON document into string fields the way the
// request decoder does (one field per string value, gjson path).
func dlpCorpusFields(doc string) []Field {
	var out []Field
	var walk func(prefix string, r gjson.Result)
	walk = func(prefix string, r gjson.Result) {
		switch {
		case r.IsObject() || r.IsArray():
			r.ForEach(func(k, v gjson.Result) bool {
				p := k.String()
				if prefix != "" {
					p = prefix + "." + p
				}
				walk(p, v)
				return true
			})
		case r.Type == gjson.String:
			out = append(out, Field{Location: "body." + prefix, Value: r.String()})
		}
	}
	walk("", gjson.Parse(doc))
	return out
}

// TestScanBenignCorpus scans realistic API traffic that carries no secret:
// ids, hashes, node ids, cursors, trace ids and placeholders must not be
// reported as secrets.
func TestScanBenignCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/dlp/benign/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	s := NewScanner(DLPOptions{})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			fields := append(dlpCorpusFields(string(b)), Field{Location: "body", Value: string(b)})
			for _, fd := range s.Scan(fields) {
				if fd.Category == CategorySecret || fd.Type == "credit_card" || fd.Type == "ssn" || fd.Type == "iban" {
					t.Errorf("false positive %s at %s (value %q)", fd.Type, fd.Location, fd.Value)
				}
			}
		})
	}
}
