package inspect

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/gjson"
)

// rpcView is the comparable part of a JSONRPCMessage.
type rpcView struct {
	ID, Method            string
	Notification          bool
	Params, Result, Error string
}

func viewRPC(msgs []JSONRPCMessage) []rpcView {
	var out []rpcView
	for _, m := range msgs {
		out = append(out, rpcView{m.ID, m.Method, m.Notification, m.Params.Raw, m.Result.Raw, m.Error.Raw})
	}
	return out
}

func TestExtractJSONRPC(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		want    []rpcView
		wantErr bool
	}{
		{name: "request", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`, want: []rpcView{{ID: "1", Method: "tools/call", Params: `{"name":"x"}`}}},
		{name: "string id", in: `{"jsonrpc":"2.0","id":"abc","method":"m","params":[1]}`, want: []rpcView{{ID: "abc", Method: "m", Params: `[1]`}}},
		{name: "null id is not a notification", in: `{"jsonrpc":"2.0","id":null,"method":"m"}`, want: []rpcView{{Method: "m"}}},
		{name: "notification", in: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, want: []rpcView{{Method: "notifications/initialized", Notification: true}}},
		{name: "batch with notification", in: `[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b","params":{}}]`, want: []rpcView{{ID: "1", Method: "a"}, {Method: "b", Notification: true, Params: `{}`}}},
		{name: "response result", in: `{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}]}}`, want: []rpcView{{ID: "3", Result: `{"content":[{"type":"text","text":"hi"}]}`}}},
		{name: "response error", in: `{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"nope"}}`, want: []rpcView{{ID: "x", Error: `{"code":-32601,"message":"nope"}`}}},
		{name: "not JSON-RPC object", in: `{"method":"x"}`},
		{name: "not JSON-RPC array", in: `[1,{"a":1}]`},
		{name: "empty array", in: `[]`},
		{name: "scalar", in: `"jsonrpc"`},
		{name: "wrong version", in: `{"jsonrpc":2.0,"id":1,"method":"m"}`, wantErr: true},
		{name: "method not string", in: `{"jsonrpc":"2.0","id":1,"method":5}`, wantErr: true},
		{name: "id object", in: `{"jsonrpc":"2.0","id":{},"method":"m"}`, wantErr: true},
		{name: "id bool", in: `{"jsonrpc":"2.0","id":true,"method":"m"}`, wantErr: true},
		{name: "params scalar", in: `{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}`, wantErr: true},
		{name: "neither request nor response", in: `{"jsonrpc":"2.0","id":1}`, wantErr: true},
		{name: "result and error", in: `{"jsonrpc":"2.0","id":1,"result":1,"error":{}}`, wantErr: true},
		{name: "response without id", in: `{"jsonrpc":"2.0","result":1}`, wantErr: true},
		{name: "batch with non-object", in: `[{"jsonrpc":"2.0","id":1,"method":"a"},3]`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := extractJSONRPC(gjson.Parse(tc.in))
			if tc.wantErr {
				checkDecodeErr(t, err, ErrMalformed, StageJSONRPC)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(tc.want, viewRPC(got)); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}
