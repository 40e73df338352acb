package inspect

import (
	"github.com/tidwall/gjson"
)

// extractJSONRPC recognises JSON-RPC 2.0 (https://www.jsonrpc.org/specification)
// in a parsed JSON body: an object with a "jsonrpc" member, or a non-empty
// batch array whose elements have one. It returns nil for JSON that is not
// JSON-RPC. A body that claims to be JSON-RPC but is not valid 2.0 (wrong
// version, method not a string, id of the wrong type, params not structured,
// neither a request nor a response) is a *DecodeError at stage "jsonrpc":
// MCP servers dispatch on these members, so the gate must read them exactly.
func extractJSONRPC(j gjson.Result) ([]JSONRPCMessage, error) {
	switch {
	case j.IsObject():
		if !j.Get("jsonrpc").Exists() {
			return nil, nil
		}
		m, err := parseJSONRPCMessage(j, -1)
		if err != nil {
			return nil, err
		}
		return []JSONRPCMessage{m}, nil
	case j.IsArray():
		claims := false
		j.ForEach(func(_, e gjson.Result) bool {
			if e.IsObject() && e.Get("jsonrpc").Exists() {
				claims = true
				return false
			}
			return true
		})
		if !claims {
			return nil, nil
		}
		var msgs []JSONRPCMessage
		var err error
		i := 0
		j.ForEach(func(_, e gjson.Result) bool {
			var m JSONRPCMessage
			if m, err = parseJSONRPCMessage(e, i); err != nil {
				return false
			}
			msgs = append(msgs, m)
			i++
			return true
		})
		if err != nil {
			return nil, err
		}
		return msgs, nil
	}
	return nil, nil
}

// parseJSONRPCMessage validates one message; i is its batch index (-1 when
// not batched), used in error messages.
func parseJSONRPCMessage(e gjson.Result, i int) (JSONRPCMessage, error) {
	fail := func(msg string) (JSONRPCMessage, error) {
		if i >= 0 {
			return JSONRPCMessage{}, decodeErr(StageJSONRPC, ErrMalformed, "batch element %d: %s", i, msg)
		}
		return JSONRPCMessage{}, decodeErr(StageJSONRPC, ErrMalformed, "%s", msg)
	}
	if !e.IsObject() {
		return fail("message is not an object")
	}
	if v := e.Get("jsonrpc"); v.Type != gjson.String || v.Str != "2.0" {
		return fail(`"jsonrpc" is not "2.0"`)
	}
	var m JSONRPCMessage
	switch id := e.Get("id"); id.Type {
	case gjson.String:
		m.ID = id.Str
	case gjson.Number:
		m.ID = id.Raw
	case gjson.Null:
		if !id.Exists() {
			m.Notification = true
		}
	default:
		return fail(`"id" is not a string, number or null`)
	}
	method := e.Get("method")
	if method.Exists() {
		if method.Type != gjson.String {
			return fail(`"method" is not a string`)
		}
		m.Method = method.Str
		m.Params = e.Get("params")
		if m.Params.Exists() && !m.Params.IsObject() && !m.Params.IsArray() && m.Params.Type != gjson.Null {
			return fail(`"params" is not an object or array`)
		}
		return m, nil
	}
	// A response: it has an id (possibly null) and exactly one of result
	// and error.
	m.Notification = false
	m.Result, m.Error = e.Get("result"), e.Get("error")
	if !e.Get("id").Exists() || m.Result.Exists() == m.Error.Exists() {
		return fail(`message has no "method" and is not a response`)
	}
	return m, nil
}
