package inspect

import (
	"bytes"
	"encoding/base64"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type requestCase struct {
	name    string
	method  string
	url     string
	header  map[string]string
	body    []byte
	lim     Limits
	wantErr error
	stage   string
	check   func(t *testing.T, r *Request)
}

func wantKind(k BodyKind) func(*testing.T, *Request) {
	return func(t *testing.T, r *Request) {
		t.Helper()
		if r.Kind != k {
			t.Errorf("got kind %q, want %q", r.Kind, k)
		}
	}
}

func multipartBody(tb testing.TB, fn func(w *multipart.Writer)) ([]byte, string) {
	tb.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fn(w)
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), w.FormDataContentType()
}

const sampleRFC822 = "From: =?UTF-8?B?Sm9zw6k=?= <jose@example.com>\r\n" +
	"To: Alice <alice@example.com>, bob@example.org\r\n" +
	"Subject: =?ISO-8859-1?Q?R=E9sum=E9?=\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Customer list attached.\r\n"

// requestCases are shared with FuzzDecodeRequest as seeds.
func requestCases(tb testing.TB) []requestCase {
	form, formCT := multipartBody(tb, func(w *multipart.Writer) {
		w.WriteField("comment", "see attached")
		fw, _ := w.CreateFormFile("upload", "../secrets.txt")
		fw.Write([]byte("AKIAIOSFODNN7EXAMPLE"))
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="image"; filename="a.png"`)
		h.Set("Content-Type", "image/png")
		pw, _ := w.CreatePart(h)
		pw.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00"))
	})
	related, relatedCT := multipartBody(tb, func(w *multipart.Writer) {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/json; charset=UTF-8")
		pw, _ := w.CreatePart(h)
		pw.Write([]byte(`{"name":"report.csv"}`))
		h = textproto.MIMEHeader{}
		h.Set("Content-Type", "application/octet-stream")
		pw, _ = w.CreatePart(h)
		pw.Write([]byte{0, 1, 2, 3})
	})
	relatedCT = strings.Replace(relatedCT, "multipart/form-data", "multipart/related", 1)
	gmailRaw := base64.RawURLEncoding.EncodeToString([]byte(sampleRFC822))
	jsonH := map[string]string{"Content-Type": "application/json"}
	return []requestCase{
		{name: "empty GET", method: "GET", url: "https://api.github.com/repos/acme/web/issues?state=open", check: func(t *testing.T, r *Request) {
			wantKind(KindEmpty)(t, r)
			if got := r.Query.Get("state"); got != "open" {
				t.Errorf("got state %q, want open", got)
			}
		}},
		{name: "query keeps semicolons", method: "GET", url: "https://x.test/?a=1;b=2&c=%41", check: func(t *testing.T, r *Request) {
			if diff := cmp.Diff(url.Values{"a": {"1;b=2"}, "c": {"A"}}, r.Query); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
		}},
		{name: "bad query escape", method: "GET", url: "https://x.test/?q=100%zz", wantErr: ErrMalformed, stage: StageQuery},
		{name: "JSON", method: "POST", url: "https://api.github.com/repos/acme/web/issues", header: jsonH, body: []byte(`{"title":"t","labels":["bug"]}`), check: func(t *testing.T, r *Request) {
			wantKind(KindJSON)(t, r)
			if got := r.JSON.Get("labels.0").String(); got != "bug" {
				t.Errorf("got labels.0 %q, want bug", got)
			}
		}},
		{name: "JSON +json suffix with params", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "application/vnd.api+json; charset=utf-8"}, body: []byte(`{"a":1}`), check: wantKind(KindJSON)},
		{name: "invalid JSON under JSON type", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(`{"a":`), wantErr: ErrMalformed, stage: StageJSON},
		{name: "duplicate key", method: "POST", url: "https://x.test/mcp", header: jsonH, body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`), wantErr: ErrMalformed, stage: StageJSON},
		{name: "duplicate escaped key", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(`{"to":"a@ok.test","t\u006f":"b@evil.test"}`), wantErr: ErrMalformed, stage: StageJSON},
		{name: "duplicate key in large object", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(`{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"r":1,"a":2}`), wantErr: ErrMalformed, stage: StageJSON},
		{name: "same key in sibling objects is fine", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(`[{"a":1},{"a":2}]`), check: wantKind(KindJSON)},
		{name: "too deep JSON", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(strings.Repeat("[", 200) + strings.Repeat("]", 200)), wantErr: ErrMalformed, stage: StageJSON},
		{name: "brackets in strings do not count as depth", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(`{"a":"` + strings.Repeat("[", 500) + `\"{"}`), check: wantKind(KindJSON)},
		{name: "sniffed JSON in text/plain", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "text/plain"}, body: []byte(` {"a":"b"}`), check: wantKind(KindJSON)},
		{name: "sniffed JSON without type", method: "POST", url: "https://x.test/", body: []byte(`[1,2]`), check: wantKind(KindJSON)},
		{name: "not JSON without type is text", method: "POST", url: "https://x.test/", body: []byte(`{not json`), check: wantKind(KindText)},
		{name: "binary", method: "PUT", url: "https://x.test/f", header: map[string]string{"Content-Type": "application/octet-stream"}, body: []byte{0x00, 0xff, 0x10, 0x80}, check: wantKind(KindBinary)},
		{name: "image declared is binary", method: "PUT", url: "https://x.test/f", header: map[string]string{"Content-Type": "image/svg"}, body: []byte("hello"), check: wantKind(KindBinary)},
		{name: "gzip JSON", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, body: gzipBytes(tb, []byte(`{"a":"b"}`)), check: func(t *testing.T, r *Request) {
			wantKind(KindJSON)(t, r)
			if string(r.Body) != `{"a":"b"}` {
				t.Errorf("got body %q, want decoded JSON", r.Body)
			}
		}},
		{name: "truncated gzip JSON", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, body: gzipBytes(tb, []byte(`{"a":"b"}`))[:12], wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "charset windows-1252", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "text/plain; charset=windows-1252"}, body: []byte("caf\xe9 \x80 \x93q\x94"), check: func(t *testing.T, r *Request) {
			wantKind(KindText)(t, r)
			if got, want := string(r.Body), "café € “q”"; got != want {
				t.Errorf("got body %q, want %q", got, want)
			}
		}},
		{name: "charset latin1 label in JSON", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": `application/json; charset="ISO-8859-1"`}, body: []byte("{\"n\":\"Jos\xe9\"}"), check: func(t *testing.T, r *Request) {
			if got := r.JSON.Get("n").String(); got != "José" {
				t.Errorf("got n %q, want José", got)
			}
		}},
		{name: "unknown charset", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "text/plain; charset=x-klingon"}, body: []byte("abc"), wantErr: ErrUnsupportedEncoding, stage: StageCharset},
		{name: "UTF-8 BOM", method: "POST", url: "https://x.test/", header: jsonH, body: []byte("\xef\xbb\xbf{\"a\":1}"), check: wantKind(KindJSON)},
		{name: "form", method: "POST", url: "https://api.stripe.com/v1/charges", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte("amount=2000&currency=usd&metadata[note]=a+b%21"), check: func(t *testing.T, r *Request) {
			wantKind(KindForm)(t, r)
			if diff := cmp.Diff(url.Values{"amount": {"2000"}, "currency": {"usd"}, "metadata[note]": {"a b!"}}, r.Form); diff != "" {
				t.Errorf("form (-want +got):\n%s", diff)
			}
		}},
		{name: "bad form escape", method: "POST", url: "https://x.test/", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte("a=%g1"), wantErr: ErrMalformed, stage: StageForm},
		{name: "multipart with file", method: "POST", url: "https://x.test/upload", header: map[string]string{"Content-Type": formCT}, body: form, check: func(t *testing.T, r *Request) {
			wantKind(KindMultipart)(t, r)
			if diff := cmp.Diff(url.Values{"comment": {"see attached"}}, r.Form); diff != "" {
				t.Errorf("form (-want +got):\n%s", diff)
			}
			want := []File{
				{Field: "upload", Filename: "../secrets.txt", ContentType: "application/octet-stream", Size: 20, SHA256: sha256Hex([]byte("AKIAIOSFODNN7EXAMPLE")), Text: "AKIAIOSFODNN7EXAMPLE"},
				{Field: "image", Filename: "a.png", ContentType: "image/png", Size: 10, SHA256: sha256Hex([]byte("\x89PNG\r\n\x1a\n\x00\x00"))},
			}
			if diff := cmp.Diff(want, r.Files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		}},
		{name: "multipart related", method: "POST", url: "https://www.googleapis.com/upload/drive/v3/files?uploadType=multipart", header: map[string]string{"Content-Type": relatedCT}, body: related, check: func(t *testing.T, r *Request) {
			wantKind(KindMultipart)(t, r)
			if got := r.Form.Get("part.0"); got != `{"name":"report.csv"}` {
				t.Errorf("got part.0 %q, want the metadata JSON", got)
			}
			if len(r.Files) != 1 || r.Files[0].Field != "part.1" || r.Files[0].Size != 4 {
				t.Errorf("got files %+v, want one 4-byte part.1", r.Files)
			}
		}},
		{name: "multipart truncated", method: "POST", url: "https://x.test/upload", header: map[string]string{"Content-Type": formCT}, body: form[:len(form)-40], wantErr: ErrMalformed, stage: StageMultipart},
		{name: "multipart without boundary", method: "POST", url: "https://x.test/upload", header: map[string]string{"Content-Type": "multipart/form-data"}, body: form, wantErr: ErrMalformed, stage: StageMultipart},
		{name: "NDJSON", method: "POST", url: "https://x.test/bulk", header: map[string]string{"Content-Type": "application/x-ndjson"}, body: []byte("{\"index\":{}}\r\n\n{\"msg\":\"hi\"}\n"), check: func(t *testing.T, r *Request) {
			wantKind(KindNDJSON)(t, r)
			if len(r.NDJSON) != 2 || r.NDJSON[1].Get("msg").String() != "hi" {
				t.Errorf("got %d lines, want 2 with msg=hi on the second", len(r.NDJSON))
			}
		}},
		{name: "NDJSON bad line", method: "POST", url: "https://x.test/bulk", header: map[string]string{"Content-Type": "application/jsonl"}, body: []byte("{\"a\":1}\n{oops}\n"), wantErr: ErrMalformed, stage: StageNDJSON},
		{name: "GraphQL JSON", method: "POST", url: "https://api.linear.app/graphql", header: jsonH, body: []byte(`{"query":"mutation IssueCreate($i: IssueCreateInput!) { issueCreate(input: $i) { success } }","operationName":"IssueCreate","variables":{"i":{"title":"x"}}}`), check: func(t *testing.T, r *Request) {
			wantKind(KindGraphQL)(t, r)
			want := []GraphQLOperation{{Type: "mutation", Name: "IssueCreate", Fields: []string{"issueCreate"}}}
			if diff := cmp.Diff(want, r.GraphQL, cmpopts.IgnoreFields(GraphQLOperation{}, "Variables", "Query")); diff != "" {
				t.Errorf("graphql (-want +got):\n%s", diff)
			}
			if got := r.GraphQL[0].Variables.Get("i.title").String(); got != "x" {
				t.Errorf("got variable i.title %q, want x", got)
			}
		}},
		{name: "GraphQL batched", method: "POST", url: "https://api.example.test/gql", header: jsonH, body: []byte(`[{"query":"{ viewer { login } }"},{"query":"mutation M { deleteRepository(id: 1) { id } }","operationName":"M"}]`), check: func(t *testing.T, r *Request) {
			wantKind(KindGraphQL)(t, r)
			want := []GraphQLOperation{{Type: "query", Name: "viewer", Fields: []string{"viewer"}}, {Type: "mutation", Name: "M", Fields: []string{"deleteRepository"}}}
			if diff := cmp.Diff(want, r.GraphQL, cmpopts.IgnoreFields(GraphQLOperation{}, "Variables", "Query")); diff != "" {
				t.Errorf("graphql (-want +got):\n%s", diff)
			}
		}},
		{name: "GraphQL variables as string", method: "POST", url: "https://x.test/graphql", header: jsonH, body: []byte(`{"query":"query Q($n: Int) { a(n: $n) }","variables":"{\"n\":3}"}`), check: func(t *testing.T, r *Request) {
			if got := r.GraphQL[0].Variables.Get("n").Int(); got != 3 {
				t.Errorf("got n %d, want 3", got)
			}
		}},
		{name: "GraphQL syntax error on graphql path", method: "POST", url: "https://api.github.com/graphql", header: jsonH, body: []byte(`{"query":"mutation { x("}`), wantErr: ErrMalformed, stage: StageGraphQL},
		{name: "GraphQL syntax error with operationName", method: "POST", url: "https://x.test/api", header: jsonH, body: []byte(`{"query":"mutation { x(","operationName":null}`), wantErr: ErrMalformed, stage: StageGraphQL},
		{name: "search query is just JSON", method: "POST", url: "https://x.test/search", header: jsonH, body: []byte(`{"query":"cats and dogs"}`), check: wantKind(KindJSON)},
		{name: "GraphQL over GET", method: "GET", url: "https://x.test/graphql?query=query+Me%7Bviewer%7Blogin%7D%7D&variables=%7B%22a%22%3A1%7D", check: func(t *testing.T, r *Request) {
			wantKind(KindGraphQL)(t, r)
			if len(r.GraphQL) != 1 || r.GraphQL[0].Name != "Me" || r.GraphQL[0].Variables.Get("a").Int() != 1 {
				t.Errorf("got %+v, want operation Me with a=1", r.GraphQL)
			}
		}},
		{name: "GraphQL over GET bad", method: "GET", url: "https://x.test/graphql?query=mutation+%7B", wantErr: ErrMalformed, stage: StageGraphQL},
		{name: "query param that is not GraphQL", method: "GET", url: "https://x.test/search?query=mutation+testing", check: wantKind(KindEmpty)},
		{name: "application/graphql", method: "POST", url: "https://x.test/graphql?operationName=B", header: map[string]string{"Content-Type": "application/graphql"}, body: []byte("query A { a } mutation B { b1 b2 }"), check: func(t *testing.T, r *Request) {
			wantKind(KindGraphQL)(t, r)
			if len(r.GraphQL) != 1 || r.GraphQL[0].Type != "mutation" || !cmp.Equal(r.GraphQL[0].Fields, []string{"b1", "b2"}) {
				t.Errorf("got %+v, want mutation B with b1, b2", r.GraphQL)
			}
		}},
		{name: "JSON-RPC", method: "POST", url: "https://mcp.example.test/mcp", header: jsonH, body: []byte(`{"jsonrpc":"2.0","id":"a1","method":"tools/call","params":{"name":"send_email","arguments":{"to":"x@y.test"}}}`), check: func(t *testing.T, r *Request) {
			wantKind(KindJSONRPC)(t, r)
			if len(r.JSONRPC) != 1 || r.JSONRPC[0].Method != "tools/call" || r.JSONRPC[0].ID != "a1" || r.JSONRPC[0].Params.Get("name").String() != "send_email" {
				t.Errorf("got %+v, want one tools/call", r.JSONRPC)
			}
		}},
		{name: "JSON-RPC batch with notification", method: "POST", url: "https://mcp.example.test/mcp", header: jsonH, body: []byte(`[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`), check: func(t *testing.T, r *Request) {
			wantKind(KindJSONRPC)(t, r)
			want := []JSONRPCMessage{{ID: "7", Method: "tools/list"}, {Method: "notifications/initialized", Notification: true}}
			if diff := cmp.Diff(want, r.JSONRPC, cmpopts.IgnoreFields(JSONRPCMessage{}, "Params", "Result", "Error")); diff != "" {
				t.Errorf("jsonrpc (-want +got):\n%s", diff)
			}
		}},
		{name: "JSON-RPC wrong version", method: "POST", url: "https://x.test/mcp", header: jsonH, body: []byte(`{"jsonrpc":"1.0","id":1,"method":"x"}`), wantErr: ErrMalformed, stage: StageJSONRPC},
		{name: "JSON-RPC batch with bad element", method: "POST", url: "https://x.test/mcp", header: jsonH, body: []byte(`[{"jsonrpc":"2.0","id":1,"method":"a"},{"id":2,"method":"b"}]`), wantErr: ErrMalformed, stage: StageJSONRPC},
		{name: "Gmail raw", method: "POST", url: "https://gmail.googleapis.com/gmail/v1/users/me/messages/send", header: jsonH, body: []byte(`{"raw":"` + gmailRaw + `"}`), check: func(t *testing.T, r *Request) {
			wantKind(KindJSON)(t, r)
			if r.MIME == nil || !cmp.Equal(r.MIME.To, []string{"alice@example.com", "bob@example.org"}) || r.MIME.Subject != "Résumé" {
				t.Errorf("got MIME %+v, want To alice, bob and Subject Résumé", r.MIME)
			}
		}},
		{name: "Gmail draft raw", method: "POST", url: "https://gmail.googleapis.com/gmail/v1/users/me/drafts", header: jsonH, body: []byte(`{"message":{"raw":"` + gmailRaw + `"}}`), check: func(t *testing.T, r *Request) {
			if r.MIME == nil || r.MIME.From != "jose@example.com" {
				t.Errorf("got MIME %+v, want From jose@example.com", r.MIME)
			}
		}},
		{name: "Gmail raw not a message", method: "POST", url: "https://gmail.googleapis.com/gmail/v1/users/me/messages/send", header: jsonH, body: []byte(`{"raw":"!!!"}`), wantErr: ErrMalformed, stage: StageMIME},
		{name: "raw field elsewhere is data", method: "POST", url: "https://x.test/api", header: jsonH, body: []byte(`{"raw":"!!!"}`), check: func(t *testing.T, r *Request) {
			if r.MIME != nil {
				t.Errorf("got MIME %+v, want none", r.MIME)
			}
		}},
		{name: "message/rfc822 upload", method: "POST", url: "https://gmail.googleapis.com/upload/gmail/v1/users/me/messages/send?uploadType=media", header: map[string]string{"Content-Type": "message/rfc822"}, body: []byte(sampleRFC822), check: func(t *testing.T, r *Request) {
			wantKind(KindMIME)(t, r)
			if r.MIME == nil || r.MIME.Text != "Customer list attached.\r\n" {
				t.Errorf("got MIME %+v, want the text body", r.MIME)
			}
		}},
		{name: "body over limit", method: "POST", url: "https://x.test/", header: jsonH, body: []byte(`{"a":"0123456789"}`), lim: Limits{MaxBody: 8}, wantErr: ErrTooLarge, stage: StageBody},
	}
}

func (tc requestCase) decode() (*Request, error) {
	u, err := url.Parse(tc.url)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, v := range tc.header {
		h.Set(k, v)
	}
	return DecodeRequest(tc.method, u, h, tc.body, tc.lim)
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range requestCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := tc.decode()
			checkDecodeErr(t, err, tc.wantErr, tc.stage)
			if err == nil && tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestDecodeRequestNilURLAndHeader(t *testing.T) {
	t.Parallel()
	r, err := DecodeRequest("POST", nil, nil, []byte(`{"a":1}`), Limits{})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if r.Kind != KindJSON {
		t.Errorf("got kind %q, want json", r.Kind)
	}
}

func BenchmarkDecodeRequestJSON1MiB(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"model":"gpt-4o","messages":[`)
	for i := 0; sb.Len() < 1<<20; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"role":"user","content":"Summarise ticket #12345 for the customer, include the order total 42.50 and the tracking URL https://example.test/t/abc"}`)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	u, _ := url.Parse("https://api.openai.com/v1/chat/completions")
	h := http.Header{"Content-Type": {"application/json"}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := DecodeRequest("POST", u, h, body, Limits{})
		if err != nil || r.Kind != KindJSON {
			b.Fatalf("got %v, %v", r, err)
		}
	}
}
