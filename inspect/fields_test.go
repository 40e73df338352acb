package inspect

import (
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
)

func mustRequest(t *testing.T, method, rawURL string, h http.Header, body string) *Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRequest(method, u, h, []byte(body), Limits{})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	return r
}

func TestRequestFields(t *testing.T) {
	t.Parallel()
	jsonH := func(extra ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Add(extra[i], extra[i+1])
		}
		return h
	}
	mp, mpCT := multipartBody(t, func(w *multipart.Writer) {
		w.WriteField("note", "hi")
		fw, _ := w.CreateFormFile("doc", "notes.txt")
		fw.Write([]byte("text file"))
	})
	cases := []struct {
		name string
		req  func(t *testing.T) *Request
		want []Field
	}{
		{
			name: "url, query, headers, JSON leaves with escaped keys",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://api.example.test/v1/items?q=a&q=b&k=1", jsonH(
					"Authorization", "Bearer tok", "Proxy-Authorization", "Basic c2Vzc2lvbg==", "X-Empty", ""),
					`{"a.b":"dot","arr":[1,"two",true,null,{"c*":"star"}],"n":-1.5e3,"nested":{"k":"v"},"e":""}`)
			},
			want: []Field{
				{"url.host", "api.example.test"}, {"url.path", "/v1/items"},
				{"query.k", "1"}, {"query.q", "a"}, {"query.q", "b"},
				{"header.Authorization", "Bearer tok"}, {"header.Content-Type", "application/json"},
				{`body.a\.b`, "dot"}, {"body.arr.0", "1"}, {"body.arr.1", "two"}, {`body.arr.4.c\*`, "star"},
				{"body.n", "-1.5e3"}, {"body.nested.k", "v"},
			},
		},
		{
			name: "root scalar",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://x.test/", jsonH(), `"just a string"`)
			},
			want: []Field{{"url.host", "x.test"}, {"url.path", "/"}, {"header.Content-Type", "application/json"}, {"body", "just a string"}},
		},
		{
			name: "GraphQL variables and query, not repeated under body",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://api.linear.app/graphql", jsonH(),
					`{"query":"mutation M($t: String) { issueCreate(title: $t) { id } }","operationName":"M","variables":{"t":"leak"},"extensions":{"k":"x"}}`)
			},
			want: []Field{
				{"url.host", "api.linear.app"}, {"url.path", "/graphql"}, {"header.Content-Type", "application/json"},
				{"body.operationName", "M"}, {"body.extensions.k", "x"},
				{"graphql.0.query", "mutation M($t: String) { issueCreate(title: $t) { id } }"},
				{"graphql.0.variables.t", "leak"},
			},
		},
		{
			name: "GraphQL batch",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://x.test/graphql", jsonH(), `[{"query":"{ a }","variables":{"x":"1"}},{"query":"{ b }","id":"q2"}]`)
			},
			want: []Field{
				{"url.host", "x.test"}, {"url.path", "/graphql"}, {"header.Content-Type", "application/json"},
				{"body.1.id", "q2"},
				{"graphql.0.query", "{ a }"}, {"graphql.0.variables.x", "1"},
				{"graphql.1.query", "{ b }"},
			},
		},
		{
			name: "JSON-RPC batch params",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://mcp.test/mcp", jsonH(),
					`[{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"send","arguments":{"to":"x@y.test"}}},{"jsonrpc":"2.0","method":"ping"}]`)
			},
			want: []Field{
				{"url.host", "mcp.test"}, {"url.path", "/mcp"}, {"header.Content-Type", "application/json"},
				{"body.0.jsonrpc", "2.0"}, {"body.0.id", "1"}, {"body.0.method", "tools/call"},
				{"body.1.jsonrpc", "2.0"}, {"body.1.method", "ping"},
				{"jsonrpc.0.params.name", "send"}, {"jsonrpc.0.params.arguments.to", "x@y.test"},
			},
		},
		{
			name: "NDJSON",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://x.test/b", http.Header{"Content-Type": {"application/x-ndjson"}}, "{\"a\":\"1\"}\n\n[\"z\"]\n")
			},
			want: []Field{
				{"url.host", "x.test"}, {"url.path", "/b"}, {"header.Content-Type", "application/x-ndjson"},
				{"body.0.a", "1"}, {"body.1.0", "z"},
			},
		},
		{
			name: "form and multipart",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://x.test/u", http.Header{"Content-Type": {mpCT}}, string(mp))
			},
			want: []Field{
				{"url.host", "x.test"}, {"url.path", "/u"}, {"header.Content-Type", mpCT},
				{"form.note", "hi"}, {"file.doc", "text file"}, {"file.doc.filename", "notes.txt"},
			},
		},
		{
			name: "text body",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://x.test/t", http.Header{"Content-Type": {"text/plain"}}, "hello")
			},
			want: []Field{{"url.host", "x.test"}, {"url.path", "/t"}, {"header.Content-Type", "text/plain"}, {"body", "hello"}},
		},
		{
			name: "Gmail raw",
			req: func(t *testing.T) *Request {
				return mustRequest(t, "POST", "https://gmail.googleapis.com/gmail/v1/users/me/messages/send", jsonH(), `{"raw":"`+b64url(sampleRFC822)+`"}`)
			},
			want: []Field{
				{"url.host", "gmail.googleapis.com"}, {"url.path", "/gmail/v1/users/me/messages/send"}, {"header.Content-Type", "application/json"},
				{"body.raw", b64url(sampleRFC822)},
				{"mime.from", "jose@example.com"}, {"mime.to", "alice@example.com"}, {"mime.to", "bob@example.org"},
				{"mime.subject", "Résumé"}, {"mime.text", "Customer list attached.\r\n"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.req(t).Fields()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

// Every body location names a gjson path that leads back to the value.
func TestRequestFieldsPathsResolve(t *testing.T) {
	t.Parallel()
	body := `{"a.b":{"c|d":["x",{"#":"y","@e":"z","f?g":"w","h\\i":"v"}]},"sp ace":"s"}`
	r := mustRequest(t, "POST", "https://x.test/", http.Header{"Content-Type": {"application/json"}}, body)
	n := 0
	for _, f := range r.Fields() {
		path, ok := strings.CutPrefix(f.Location, "body.")
		if !ok {
			continue
		}
		n++
		if got := gjson.Get(body, path).String(); got != f.Value {
			t.Errorf("gjson.Get(%q) = %q, want %q", path, got, f.Value)
		}
	}
	if n != 6 {
		t.Errorf("got %d body fields, want 6", n)
	}
}

func TestResponseFields(t *testing.T) {
	t.Parallel()
	h := http.Header{"Content-Type": {"text/event-stream"}, "Set-Cookie": {"s=1"}}
	r, err := DecodeResponse(200, h, []byte("data: plain\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{"header.Content-Type", "text/event-stream"}, {"header.Set-Cookie", "s=1"},
		{"sse.0.data", "plain"}, {"sse.1.data.choices.0.delta.content", "Hi"},
	}
	if diff := cmp.Diff(want, r.Fields()); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if got, want := r.Text(), "plain\nHi"; got != want {
		t.Errorf("got text %q, want %q", got, want)
	}
}

func TestRequestText(t *testing.T) {
	t.Parallel()
	r := mustRequest(t, "POST", "https://x.test/p?q=1", http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer secret"}}, `{"a":"b"}`)
	if got, want := r.Text(), "x.test\n/p\n1\nb"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	big := strings.Repeat("é", MaxText) // 2 bytes a rune
	r = mustRequest(t, "POST", "https://x.test/", http.Header{"Content-Type": {"text/plain"}}, big)
	txt := r.Text()
	if len(txt) > MaxText || len(txt) < MaxText-4 {
		t.Errorf("got %d bytes, want about %d", len(txt), MaxText)
	}
	if !strings.HasSuffix(txt, "é") {
		t.Errorf("got text ending %q, want a whole rune", txt[len(txt)-3:])
	}
}
