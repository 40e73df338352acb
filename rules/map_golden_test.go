package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/google/go-cmp/cmp"
)

var updateGolden = flag.Bool("update", false, "rewrite rules/testdata/requests/**/*.action.json")

// goldenRequestsDir holds the request-shape corpus: *.http requests and
// their expected *.action.json mappings.
const goldenRequestsDir = "testdata/requests"

// goldenLimits are the decode limits the corpus is mapped with.
var goldenLimits = inspect.Limits{MaxBody: 8 << 20, MaxRatio: 100}

// goldenAction is the part of an action the mapping decides; ID, timestamp,
// identity and signals are the gate's.
type goldenAction struct {
	Tool        string           `json:"tool"`
	Operation   string           `json:"operation"`
	Effect      aarm.Effect      `json:"effect"`
	Target      string           `json:"target,omitempty"`
	Destination aarm.Destination `json:"destination"`
	Method      string           `json:"method"`
	Path        string           `json:"path"`
	Parameters  map[string]any   `json:"parameters,omitempty"`
	Entities    []aarm.Entity    `json:"entities,omitempty"`
	Mapping     string           `json:"mapping"`
}

// goldenResult is what a *.action.json file holds.
type goldenResult struct {
	Actions []goldenAction `json:"actions,omitempty"`
	LLM     *LLMExchange   `json:"llm,omitempty"`
	// Error is the mapping (or decoding) error, for requests that must be denied.
	Error string `json:"error,omitempty"`
}

// mapRequestFile parses, decodes and maps one request file.
func mapRequestFile(t testing.TB, c *Catalog, name string, data []byte) (*Mapping, error) {
	t.Helper()
	method, u, h, body, err := ParseHTTPRequestFile(name, data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	req, err := inspect.DecodeRequest(method, u, h, body, goldenLimits)
	if err != nil {
		return nil, err
	}
	return c.Map(req)
}

func goldenOf(m *Mapping, err error) goldenResult {
	if err != nil {
		return goldenResult{Error: err.Error()}
	}
	var g goldenResult
	for _, a := range m.Actions {
		g.Actions = append(g.Actions, goldenAction{Tool: a.Tool, Operation: a.Operation, Effect: a.Effect, Target: a.Target,
			Destination: a.Destination, Method: a.Method, Path: a.Path, Parameters: a.Parameters, Entities: a.Entities, Mapping: a.Mapping})
	}
	g.LLM = m.LLM
	return g
}

func goldenFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(goldenRequestsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".http") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func builtinCatalogForTest(t testing.TB) *Catalog {
	t.Helper()
	c, err := LoadCatalog(CatalogOptions{Builtin: true, InternalDomains: []string{"corp.example.com", "*.internal"},
		MCPServers: map[string]string{"mcp.example.com": "tools", "https://gateway.example.com/github/": "github"}})
	if err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}
	return c
}

// TestGolden maps every request of the corpus with the built-in catalog and
// compares the result with its .action.json (go test ./rules -update
// rewrites them; review the diff: the goldens are the specification).
func TestGolden(t *testing.T) {
	t.Parallel()
	c := builtinCatalogForTest(t)
	files := goldenFiles(t)
	if len(files) == 0 {
		t.Fatal("no golden requests")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(f, goldenRequestsDir+"/"), ".http"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := goldenOf(mapRequestFile(t, c, f, data))
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			goldenPath := strings.TrimSuffix(f, ".http") + ".action.json"
			if *updateGolden {
				if err := os.WriteFile(goldenPath, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantBytes, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("missing golden (run go test ./rules -update): %v", err)
			}
			// Compare as generic JSON so that formatting is not the test.
			var gotJSON, wantJSON any
			if err := json.Unmarshal(buf.Bytes(), &gotJSON); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(wantBytes, &wantJSON); err != nil {
				t.Fatalf("%s: %v", goldenPath, err)
			}
			if diff := cmp.Diff(wantJSON, gotJSON); diff != "" {
				t.Errorf("%s mapping mismatch (-want +got):\n%s", f, diff)
			}
		})
	}
}
