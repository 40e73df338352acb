package inspect

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type responseCase struct {
	name    string
	status  int
	header  map[string]string
	body    []byte
	wantErr error
	stage   string
	check   func(t *testing.T, r *Response)
}

// sseView is the comparable part of an SSEEvent.
type sseView struct{ Event, ID, Data, JSON string }

func viewSSE(evs []SSEEvent) []sseView {
	var out []sseView
	for _, e := range evs {
		out = append(out, sseView{e.Event, e.ID, e.Data, e.JSON.Raw})
	}
	return out
}

// responseCases are shared with FuzzDecodeResponse as seeds.
func responseCases(tb testing.TB) []responseCase {
	sse := map[string]string{"Content-Type": "text/event-stream; charset=utf-8"}
	return []responseCase{
		{name: "JSON", status: 200, header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"items":[{"email":"a@x.test"}]}`), check: func(t *testing.T, r *Response) {
			if r.Kind != KindJSON || r.StatusCode != 200 || r.JSON.Get("items.0.email").String() != "a@x.test" {
				t.Errorf("got kind %q status %d, want JSON 200 with items", r.Kind, r.StatusCode)
			}
		}},
		{name: "invalid JSON", status: 200, header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"a":`), wantErr: ErrMalformed, stage: StageJSON},
		{name: "br JSON", status: 200, header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "br"}, body: brotliBytes(tb, []byte(`{"a":1}`)), check: func(t *testing.T, r *Response) {
			if r.Kind != KindJSON || string(r.Body) != `{"a":1}` {
				t.Errorf("got kind %q body %q, want decoded JSON", r.Kind, r.Body)
			}
		}},
		{name: "MCP JSON-RPC result", status: 200, header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"secret"}]}}`), check: func(t *testing.T, r *Response) {
			if r.Kind != KindJSONRPC || len(r.JSONRPC) != 1 || r.JSONRPC[0].Result.Get("content.0.text").String() != "secret" {
				t.Errorf("got kind %q %+v, want one JSON-RPC result", r.Kind, r.JSONRPC)
			}
		}},
		{name: "SSE multi-line data", status: 200, header: sse, body: []byte(": keep-alive\n\nevent: update\nid: 7\ndata: line one\ndata:line two\n\ndata: {\"a\":\ndata: 1}\n\ndata: [DONE]\n\n"), check: func(t *testing.T, r *Response) {
			want := []sseView{
				{Event: "update", ID: "7", Data: "line one\nline two"},
				{Event: "message", ID: "7", Data: "{\"a\":\n1}", JSON: "{\"a\":\n1}"},
				{Event: "message", ID: "7", Data: "[DONE]"},
			}
			if r.Kind != KindSSE {
				t.Errorf("got kind %q, want sse", r.Kind)
			}
			if diff := cmp.Diff(want, viewSSE(r.Events)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		}},
		{name: "SSE CRLF and CR line ends, empty data, unterminated last event", status: 200, header: sse, body: []byte("data\r\n\r\ndata: a\rdata: b\r\rid: 9\r\ndata: tail"), check: func(t *testing.T, r *Response) {
			want := []sseView{
				{Event: "message", Data: ""},
				{Event: "message", Data: "a\nb"},
				{Event: "message", ID: "9", Data: "tail"},
			}
			if diff := cmp.Diff(want, viewSSE(r.Events)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		}},
		{name: "SSE MCP streamable HTTP", status: 200, header: sse, body: []byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"rows\"}]}}\n\n"), check: func(t *testing.T, r *Response) {
			want := []JSONRPCMessage{{Method: "notifications/progress", Notification: true}, {ID: "2"}}
			if diff := cmp.Diff(want, r.JSONRPC, cmpopts.IgnoreFields(JSONRPCMessage{}, "Params", "Result", "Error")); diff != "" {
				t.Errorf("jsonrpc (-want +got):\n%s", diff)
			}
			if got := r.JSONRPC[1].Result.Get("content.0.text").String(); got != "rows" {
				t.Errorf("got result text %q, want rows", got)
			}
		}},
		{name: "NDJSON stream", status: 200, header: map[string]string{"Content-Type": "application/x-ndjson"}, body: []byte("{\"response\":\"Hel\"}\n{\"response\":\"lo\",\"done\":true}\n"), check: func(t *testing.T, r *Response) {
			if r.Kind != KindNDJSON || len(r.NDJSON) != 2 {
				t.Errorf("got kind %q with %d lines, want ndjson with 2", r.Kind, len(r.NDJSON))
			}
		}},
		{name: "Gmail raw message", status: 200, header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}, body: []byte(`{"id":"18c","raw":"` + b64url(sampleRFC822) + `"}`), check: func(t *testing.T, r *Response) {
			if r.MIME == nil || r.MIME.Subject != "Résumé" {
				t.Errorf("got MIME %+v, want subject Résumé", r.MIME)
			}
		}},
		{name: "form token response", status: 200, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte("access_token=gho_abc&scope=repo"), check: func(t *testing.T, r *Response) {
			if r.Kind != KindForm || r.Form.Get("access_token") != "gho_abc" {
				t.Errorf("got kind %q form %v, want the token", r.Kind, r.Form)
			}
		}},
		{name: "html text", status: 404, header: map[string]string{"Content-Type": "text/html; charset=windows-1252"}, body: []byte("<p>caf\xe9</p>"), check: func(t *testing.T, r *Response) {
			if r.Kind != KindText || string(r.Body) != "<p>café</p>" {
				t.Errorf("got kind %q body %q, want UTF-8 text", r.Kind, r.Body)
			}
		}},
		{name: "binary", status: 200, header: map[string]string{"Content-Type": "image/png"}, body: []byte("\x89PNG\r\n\x1a\n"), check: func(t *testing.T, r *Response) {
			if r.Kind != KindBinary {
				t.Errorf("got kind %q, want binary", r.Kind)
			}
		}},
		{name: "empty", status: 204, check: func(t *testing.T, r *Response) {
			if r.Kind != KindEmpty {
				t.Errorf("got kind %q, want empty", r.Kind)
			}
		}},
		{name: "gzip bomb", status: 200, header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, body: gzipBytes(tb, make([]byte, 1<<20)), wantErr: ErrExpansion, stage: StageContentEncoding},
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func (tc responseCase) decode() (*Response, error) {
	h := http.Header{}
	for k, v := range tc.header {
		h.Set(k, v)
	}
	return DecodeResponse(tc.status, h, tc.body, Limits{})
}

func TestDecodeResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range responseCases(t) {
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
