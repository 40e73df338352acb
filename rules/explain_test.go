package rules

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	c := builtinCatalogForTest(t)
	data, err := os.ReadFile("testdata/requests/trace/github-issue-trace-ascii.http")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Explain(c, "trace.http", data, goldenLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Actions) != 1 || e.Actions[0].Operation != "issues.create" || len(e.Matches) != 1 {
		t.Fatalf("got %+v, want one github issues.create action", e.Actions)
	}
	if m := e.Matches[0]; m.File != "catalog/github.yaml" || m.Line == 0 || m.PathTemplate != "/repos/{owner}/{repo}/issues" {
		t.Errorf("got match %+v, want catalog/github.yaml:<line> /repos/{owner}/{repo}/issues", m)
	}
	var b strings.Builder
	if err := e.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"github / issues.create", "rule: catalog/github.yaml#github/issues.create (catalog/github.yaml:", "why:  host api.github.com matched api.github.com (exact)", `"tool": "github"`} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}

	bad, err := os.ReadFile("testdata/requests/mcp/meta-missing-tool.http")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Explain(c, "bad.http", bad, goldenLimits); !errors.Is(err, ErrUnmappable) {
		t.Errorf("got %v, want ErrUnmappable", err)
	}
	if _, err := Explain(c, "garbage.http", []byte("nonsense"), goldenLimits); !errors.Is(err, ErrHTTPFile) {
		t.Errorf("got %v, want ErrHTTPFile", err)
	}
}
