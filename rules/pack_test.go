package rules

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/google/go-cmp/cmp"
)

const packS3 = `
tool: s3test
hosts: ["{bucket}.s3.amazonaws.com", "{bucket}.s3.{region}.amazonaws.com", "*.example-wild.com", exact.example-wild.com]
actions:
  - operation: objects.put
    match: {method: PUT, path: "/{key*}"}
    effect: write
    target: "{bucket}/{key}"
    params: {acl: header.x-amz-acl}
  - operation: objects.get
    match: {method: GET, path: "/{key*}"}
    effect: read
    target: "{bucket}/{key}"
`

func TestPackErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		yaml     string
		sentinel error
		line     int
		field    string
	}{
		{"unknown top key", "tool: x\nhosts: [a.com]\nactons: []\n", ErrPackUnknownKey, 3, "actons"},
		{"unknown action key", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n    efect: read\n", ErrPackUnknownKey, 7, "actions[0].efect"},
		{"unknown match key", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /, metod: GET}\n    effect: read\n", ErrPackUnknownKey, 5, "actions[0].match.metod"},
		{"bad path template", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: \"/a/{b\"}\n    effect: read\n", ErrPackTemplate, 5, "actions[0].match.path"},
		{"rest not last", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: \"/{a*}/b\"}\n    effect: read\n", ErrPackTemplate, 5, "actions[0].match.path"},
		{"unknown target name", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: \"/{id}\"}\n    effect: read\n    target: \"{nope}\"\n", ErrPackTemplate, 7, "actions[0].target"},
		{"bad effect", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: destroy\n", ErrPackInvalid, 6, "actions[0].effect"},
		{"duplicate operation", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /a}\n    effect: read\n  - operation: a\n    match: {path: /b}\n    effect: read\n", ErrPackDuplicate, 7, "actions[1].operation"},
		{"bad param source", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n    params: {x: cookie.y}\n", ErrPackInvalid, 7, "actions[0].params.x"},
		{"path param not captured", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n    params: {x: path.id}\n", ErrPackInvalid, 7, "actions[0].params.x"},
		{"override in builtin", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n    override: true\n", ErrPackOverride, 7, "actions[0].override"},
		{"reserved tool", "tool: http\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n", ErrPackInvalid, 1, "tool"},
		{"missing hosts", "tool: x\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n", ErrPackInvalid, 1, "hosts"},
		{"bad host", "tool: x\nhosts: [\"https://a.com/\"]\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n", ErrPackTemplate, 2, "hosts[0]"},
		{"yaml syntax", "tool: x\nhosts: [a.com\n", ErrPackInvalid, -1, ""},
		{"alias refused", "tool: &t x\nhosts: [a.com]\ndescription: *t\nactions:\n  - operation: a\n    match: {path: /}\n    effect: read\n", ErrPackInvalid, 3, "description"},
		{"unknown entity kind", "tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: \"/{id}\"}\n    effect: read\n    entities: {person: [id]}\n", ErrPackInvalid, 7, "actions[0].entities.person"},
		{"empty file", "", ErrPackInvalid, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parsePackFile("p.yaml", []byte(tc.yaml), false)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("got %v, want %v", err, tc.sentinel)
			}
			var pe *PackError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T, want *PackError", err)
			}
			if tc.line < 0 && pe.Line > 0 {
				tc.line = pe.Line // YAML syntax errors: the parser's line
			}
			if pe.Line != tc.line || pe.Field != tc.field || pe.File != "p.yaml" {
				t.Errorf("got %s:%d field %q, want p.yaml:%d field %q (%v)", pe.File, pe.Line, pe.Field, tc.line, tc.field, err)
			}
		})
	}
}

func writePack(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mapURL(t *testing.T, c *Catalog, method, rawURL string, h http.Header, body string) *Mapping {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.Header{}
	}
	req, err := inspect.DecodeRequest(method, u, h, []byte(body), goldenLimits)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Map(req)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUserPacks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	override := writePack(t, dir, "override.yaml", `
tool: github
hosts: [api.github.com]
actions:
  - operation: repos.delete
    match: {method: DELETE, path: "/repos/{owner}/{repo}"}
    effect: admin
    target: "{owner}/{repo}"
    override: true
`)
	c, err := LoadCatalog(CatalogOptions{Builtin: true, Paths: []string{override}})
	if err != nil {
		t.Fatal(err)
	}
	m := mapURL(t, c, "DELETE", "https://api.github.com/repos/acme/web", nil, "")
	if got := m.Actions[0]; got.Effect != aarm.EffectAdmin || got.Mapping != override+"#github/repos.delete" {
		t.Errorf("got %s %s, want the user override (admin, %s)", got.Effect, got.Mapping, override)
	}

	silent := writePack(t, dir, "silent.yaml", strings.Replace(readTestFile(t, override), "    override: true\n", "", 1))
	_, err = LoadCatalog(CatalogOptions{Builtin: true, Paths: []string{silent}})
	if !errors.Is(err, ErrPackDuplicate) {
		t.Errorf("silent redefinition: got %v, want ErrPackDuplicate", err)
	}

	nothing := writePack(t, dir, "nothing.yaml", strings.Replace(readTestFile(t, override), "repos.delete", "repos.vanish", 1))
	_, err = LoadCatalog(CatalogOptions{Builtin: true, Paths: []string{nothing}})
	if !errors.Is(err, ErrPackOverride) {
		t.Errorf("override of nothing: got %v, want ErrPackOverride", err)
	}

	collide := writePack(t, dir, "collide.yaml", `
tool: mygh
hosts: [api.github.com]
actions:
  - operation: nuke
    match: {method: DELETE, path: "/repos/{o}/{r}"}
    effect: delete
`)
	_, err = LoadCatalog(CatalogOptions{Builtin: true, Paths: []string{collide}})
	if !errors.Is(err, ErrPackCollision) {
		t.Errorf("equal shapes in two packs: got %v, want ErrPackCollision", err)
	}
	var pe *PackError
	if errors.As(err, &pe) && (pe.File != collide || pe.Line != 5) {
		t.Errorf("collision reported at %s:%d, want %s:5", pe.File, pe.Line, collide)
	}
}

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHostTemplatesAndSpecificity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePack(t, dir, "s3.yaml", packS3)
	writePack(t, dir, "more.yaml", `
tool: s3special
hosts: [reports.s3.amazonaws.com]
actions:
  - operation: reports.put
    match: {method: PUT, path: "/{key*}"}
    effect: send
`)
	c, err := LoadCatalog(CatalogOptions{Paths: []string{dir}, InternalDomains: []string{"corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, url string
		h           http.Header
		tool, op    string
		target      string
		params      map[string]any
	}{
		{"PUT", "https://photos.s3.eu-west-1.amazonaws.com/2026/a%20b.jpg", http.Header{"X-Amz-Acl": {"public-read"}}, "s3test", "objects.put", "photos/2026/a b.jpg",
			map[string]any{"bucket": "photos", "region": "eu-west-1", "key": "2026/a b.jpg", "acl": "public-read"}},
		{"GET", "https://Photos.S3.amazonaws.com./x", nil, "s3test", "objects.get", "photos/x", map[string]any{"bucket": "photos", "key": "x"}},
		// An exact host beats the template of another pack.
		{"PUT", "https://reports.s3.amazonaws.com/q3.csv", nil, "s3special", "reports.put", "", map[string]any{"key": "q3.csv"}},
		{"GET", "https://a.b.example-wild.com/k", nil, "s3test", "objects.get", "k", map[string]any{"key": "k"}},
		{"GET", "https://example-wild.com/k", nil, "http", "http.get", "example-wild.com", nil},
	}
	for _, tc := range cases {
		m := mapURL(t, c, tc.method, tc.url, tc.h, "")
		a := m.Actions[0]
		if a.Tool != tc.tool || a.Operation != tc.op || a.Target != tc.target {
			t.Errorf("%s %s: got %s/%s target %q, want %s/%s target %q", tc.method, tc.url, a.Tool, a.Operation, a.Target, tc.tool, tc.op, tc.target)
		}
		if diff := cmp.Diff(tc.params, a.Parameters); diff != "" {
			t.Errorf("%s %s parameters (-want +got):\n%s", tc.method, tc.url, diff)
		}
	}
}

func TestMCPToolEffect(t *testing.T) {
	t.Parallel()
	cases := map[string]aarm.Effect{
		"get_issue": aarm.EffectRead, "list_messages": aarm.EffectRead, "listMessages": aarm.EffectRead,
		"send_email": aarm.EffectSend, "slack_post_message": aarm.EffectSend, "create_issue": aarm.EffectWrite,
		"delete_file": aarm.EffectDelete, "list_and_delete_files": aarm.EffectDelete, "transfer_funds": aarm.EffectSpend,
		"run_shell_command": aarm.EffectExecute, "frobnicate": aarm.EffectExecute, "GetUserInfo": aarm.EffectRead,
		"grant_access": aarm.EffectAdmin, "HTTPFetch": aarm.EffectRead,
	}
	for name, want := range cases {
		if got := mcpToolEffect(name); got != want {
			t.Errorf("mcpToolEffect(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestMapErrorsAreTyped(t *testing.T) {
	t.Parallel()
	c := builtinCatalogForTest(t)
	for _, f := range []string{"mcp/meta-missing-tool", "mcp/tools-call-bad-arguments", "llm/openai-chat-bad-messages"} {
		data, err := os.ReadFile(filepath.Join(goldenRequestsDir, f+".http"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = mapRequestFile(t, c, f, data)
		var me *MappingError
		if !errors.As(err, &me) || !errors.Is(err, ErrUnmappable) {
			t.Errorf("%s: got %v, want a *MappingError wrapping ErrUnmappable", f, err)
		}
	}
	// A pack that reads a form field from an opaque body is an error, not an
	// empty parameter.
	req := &inspect.Request{Method: "POST", URL: &url.URL{Scheme: "https", Host: "slack.com", Path: "/api/chat.postMessage"},
		Header: http.Header{}, Body: []byte{0, 1, 2}, Kind: inspect.KindBinary, ContentType: "application/octet-stream"}
	if _, err := c.Map(req); !errors.Is(err, ErrUnmappable) {
		t.Errorf("binary body for chat.postMessage: got %v, want ErrUnmappable", err)
	}
	if _, err := c.Map(&inspect.Request{}); !errors.Is(err, ErrUnmappable) {
		t.Errorf("request without URL: got %v, want ErrUnmappable", err)
	}
}

func TestMapIsDeterministic(t *testing.T) {
	t.Parallel()
	c := builtinCatalogForTest(t)
	for _, f := range goldenFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		a1, e1 := mapRequestFile(t, c, f, data)
		a2, e2 := mapRequestFile(t, c, f, data)
		if diff := cmp.Diff(goldenOf(a1, e1), goldenOf(a2, e2)); diff != "" {
			t.Errorf("%s: two mappings differ:\n%s", f, diff)
		}
	}
}

func TestPacksList(t *testing.T) {
	t.Parallel()
	c := builtinCatalogForTest(t)
	tools := map[string]bool{}
	for _, p := range c.Packs() {
		tools[p.Tool] = true
		if len(p.Operations) == 0 {
			t.Errorf("pack %s has no operations", p.Tool)
		}
	}
	for _, want := range []string{"github", "gitlab", "slack", "gmail", "google-drive", "google-docs", "google-calendar", "slack-webhook", "pastebin", "mcp:<server>", "llm", "http"} {
		if !tools[want] {
			t.Errorf("Packs() lacks %s", want)
		}
	}
}

func FuzzLoadPack(f *testing.F) {
	// Small seeds keep the fuzzer's minimisation cheap; the built-in packs
	// are exercised by every other test.
	f.Add([]byte(`tool: gh
hosts: [api.github.com, "*.example.com"]
actions:
  - operation: graphql.createIssue
    match: {method: POST, path: /graphql, graphql: {type: mutation, field: createIssue}}
    effect: write
    params: {variables: graphql.variables, name: graphql.name}
  - operation: issues.create
    match: {method: [POST, PUT], path: "/repos/{owner}/{repo}/issues", header: {Content-Type: application/json}, body: {draft: "false"}}
    effect: write
    target: "{owner}/{repo}"
    params: {title: [body.title, query.title], to: mime.to}
    entities: {recipient: [to], repository: [owner]}
---
tool: rpc
hosts: [rpc.example.org]
external: false
case_insensitive: true
actions:
  - operation: call
    match: {path: "/v{n}/x:{verb}", jsonrpc: {method: "tools/*"}}
    effect: execute
    params: {m: jsonrpc.method, p: jsonrpc.params.name}
`))
	f.Add([]byte(packS3))
	f.Add([]byte("tool: x\nhosts: [a.com]\nactions:\n  - operation: a\n    match: {path: \"/{a}/{b*}\", query: {x: \"!\"}}\n    effect: read\n    target: \"{a}-{b}\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		packs, err := parsePackFile("fuzz.yaml", data, true)
		if err != nil {
			var pe *PackError
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, want *PackError: %v", err, err)
			}
			return
		}
		if _, err := compileCatalog(packs); err != nil {
			var pe *PackError
			if !errors.As(err, &pe) {
				t.Fatalf("compile error is %T, want *PackError: %v", err, err)
			}
		}
	})
}
