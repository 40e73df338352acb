package rules

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// catalogNames reads tool and operation names straight from the catalog's
// YAML, so this check does not depend on the mapping code's Go API.
func catalogNames(t *testing.T) map[string][]string {
	t.Helper()
	files, _ := filepath.Glob("catalog/*.yaml")
	if len(files) == 0 {
		t.Skip("no catalog yet")
	}
	names := map[string][]string{
		// Built-in mappings that are code, not packs.
		"http": {"http.get", "http.head", "http.options", "http.post", "http.put", "http.patch", "http.delete"},
		"llm":  {"completion"},
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytesReader(data))
		for {
			var pack struct {
				Tool    string `yaml:"tool"`
				Actions []struct {
					Operation string `yaml:"operation"`
				} `yaml:"actions"`
			}
			if err := dec.Decode(&pack); err != nil {
				break
			}
			for _, a := range pack.Actions {
				names[pack.Tool] = append(names[pack.Tool], a.Operation)
			}
		}
	}
	return names
}

func TestDefaultPolicyUsesCatalogNames(t *testing.T) {
	t.Parallel()
	names := catalogNames(t)
	known := LintKnownFrom(names)
	p, err := ParsePolicy("policy.yaml", DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range LintPolicy(p, known) {
		t.Errorf("default policy: %s", f)
	}
}

func bytesReader(b []byte) *bytesReaderT { return &bytesReaderT{b: b} }

type bytesReaderT struct{ b []byte }

func (r *bytesReaderT) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
