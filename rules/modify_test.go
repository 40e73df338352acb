package rules

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/aarmproxy/aarm"
)

func TestApplyModificationsDoesNotTouchInput(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://api.test/x?a=1")
	req := EditRequest{URL: u, Header: http.Header{"Cc": {"x@y.z"}}, Body: []byte(`{"n":500}`), ContentType: "application/json"}
	mods := []aarm.Modification{
		{Kind: aarm.ModCapJSON, Path: "n", Value: 10.0},
		{Kind: aarm.ModSetQuery, Path: "a", Value: "2"},
		{Kind: aarm.ModDeleteHeader, Path: "Cc"},
	}
	got, changes, err := ApplyModifications(mods, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != `{"n":10}` || got.URL.RawQuery != "a=2" || got.Header.Get("Cc") != "" {
		t.Errorf("edited: got body %s query %s cc %q", got.Body, got.URL.RawQuery, got.Header.Get("Cc"))
	}
	if string(req.Body) != `{"n":500}` || req.URL.RawQuery != "a=1" || req.Header.Get("Cc") != "x@y.z" {
		t.Errorf("input changed: body %s query %s cc %q", req.Body, req.URL.RawQuery, req.Header.Get("Cc"))
	}
	if len(changes) != 3 {
		t.Errorf("changes: got %q, want 3", changes)
	}
}

func TestApplyModificationsFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  aarm.Modification
		req  EditRequest
	}{
		{"body edit on empty body", aarm.Modification{Kind: aarm.ModSetJSON, Path: "a", Value: 1}, EditRequest{}},
		{"body edit on form body", aarm.Modification{Kind: aarm.ModDeleteJSON, Path: "a"}, EditRequest{Body: []byte("a=1&b=2")}},
		{"required query absent", aarm.Modification{Kind: aarm.ModDeleteQuery, Path: "q", Required: true}, EditRequest{URL: &url.URL{Path: "/"}}},
		{"query edit without URL", aarm.Modification{Kind: aarm.ModSetQuery, Path: "q", Value: "1"}, EditRequest{}},
		{"required header absent", aarm.Modification{Kind: aarm.ModDeleteHeader, Path: "Cc", Required: true}, EditRequest{}},
		{"header value with a line break", aarm.Modification{Kind: aarm.ModSetHeader, Path: "X", Value: "a\r\nEvil: 1"}, EditRequest{}},
		{"unknown kind", aarm.Modification{Kind: "body.rename", Path: "a"}, EditRequest{Body: []byte(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := ApplyModifications([]aarm.Modification{tc.mod}, tc.req, nil)
			if !errors.Is(err, ErrModificationFailed) {
				t.Fatalf("got %v, want an error wrapping ErrModificationFailed", err)
			}
			var me *ModificationError
			if !errors.As(err, &me) || me.Mod.Kind != tc.mod.Kind {
				t.Errorf("errors.As: got %#v", me)
			}
		})
	}
}

func BenchmarkApplyModifications(b *testing.B) {
	u, _ := url.Parse("https://api.test/items?per_page=1000&q=x")
	body := []byte(`{"items":[1,2,3,4,5,6,7,8,9,10],"note":"key AKIAIOSFODNN7EXAMPLE","user":{"email":"a@b.c"},"limit":5000}`)
	req := EditRequest{URL: u, Header: http.Header{"Cc": {"x@y.z"}}, Body: body, ContentType: "application/json"}
	mods := []aarm.Modification{
		{Kind: aarm.ModCapJSON, Path: "items", Value: 3.0},
		{Kind: aarm.ModCapJSON, Path: "limit", Value: 100.0},
		{Kind: aarm.ModSetQuery, Path: "per_page", Value: "100"},
		{Kind: aarm.ModDeleteHeader, Path: "Cc"},
		{Kind: aarm.ModRedact},
	}
	reds := []Redaction{{Location: "body.note", Value: "AKIAIOSFODNN7EXAMPLE", Placeholder: "[REDACTED:aws_access_key_id]"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ApplyModifications(mods, req, reds); err != nil {
			b.Fatal(err)
		}
	}
}

func TestApplyRedactionLocations(t *testing.T) {
	t.Parallel()
	const key = "AKIAIOSFODNN7EXAMPLE"
	ph := "[REDACTED:aws_access_key_id]"
	tests := []struct {
		name, loc, body, url string
		wantBody, wantPath   string
		wantErr              bool
	}{
		{name: "form field", loc: "form.note", body: "note=" + key + "&a=1", wantBody: "note=" + ph + "&a=1"},
		{name: "graphql variable", loc: "graphql.0.variables.input.body", body: `{"query":"mutation{x}","variables":{"input":{"body":"` + key + `"}}}`,
			wantBody: `{"query":"mutation{x}","variables":{"input":{"body":"` + ph + `"}}}`},
		{name: "ndjson line", loc: "body.1.text", body: "{\"a\":1}\n{\"text\":\"" + key + "\"}\n", wantBody: "{\"a\":1}\n{\"text\":\"" + ph + "\"}\n"},
		{name: "url path", loc: "url.path", url: "https://h.test/keys/" + key + "/x", wantPath: "/keys/" + ph + "/x"},
		{name: "value revealed by decoding is not there", loc: "body.note|base64", body: `{"note":"QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}`, wantErr: true},
		{name: "mime fields are encoded in the body", loc: "mime.text", body: `{"raw":"c2VjcmV0"}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := EditRequest{Body: []byte(tc.body)}
			if tc.url != "" {
				req.URL, _ = url.Parse(tc.url)
			}
			got, _, err := ApplyModifications([]aarm.Modification{{Kind: aarm.ModRedact}}, req,
				[]Redaction{{Location: tc.loc, Value: key, Placeholder: ph}})
			if tc.wantErr {
				if !errors.Is(err, ErrModificationFailed) {
					t.Fatalf("got %v, want ErrModificationFailed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantBody != "" && string(got.Body) != tc.wantBody {
				t.Errorf("body: got %s, want %s", got.Body, tc.wantBody)
			}
			if tc.wantPath != "" && got.URL.Path != tc.wantPath {
				t.Errorf("path: got %s, want %s", got.URL.Path, tc.wantPath)
			}
		})
	}
}
