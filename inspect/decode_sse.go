package inspect

import (
	"strings"

	"github.com/tidwall/gjson"
)

// parseSSE splits a text/event-stream body into events following the WHATWG
// event-stream interpretation
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
// lines end in CRLF, LF or CR; ":" starts a comment; "data" lines of one
// event are joined with "\n"; "event" names the type; "id" sets the last
// event ID (carried to later events). Unlike a browser, a final event that is
// not followed by a blank line is still returned: a truncated stream is still
// data the agent read. Each event's data that is valid JSON is parsed, and
// JSON-RPC messages among them (MCP responses and notifications) are
// returned too. The stream format has no invalid input, so there is no error.
func parseSSE(body []byte) ([]SSEEvent, []JSONRPCMessage) {
	var (
		events  []SSEEvent
		rpc     []JSONRPCMessage
		data    strings.Builder
		hasData bool
		evType  string
		lastID  string
	)
	dispatch := func() {
		if hasData {
			ev := SSEEvent{Event: evType, ID: lastID, Data: data.String()}
			if ev.Event == "" {
				ev.Event = "message"
			}
			if checkJSON(ev.Data) == nil {
				ev.JSON = gjson.Parse(ev.Data)
				if msgs, err := extractJSONRPC(ev.JSON); err == nil {
					rpc = append(rpc, msgs...)
				}
			}
			events = append(events, ev)
		}
		data.Reset()
		hasData, evType = false, ""
	}
	s := string(body)
	s = strings.TrimPrefix(s, "\uFEFF")
	for s != "" {
		i := strings.IndexAny(s, "\r\n")
		var line string
		if i < 0 {
			line, s = s, ""
		} else {
			line = s[:i]
			if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			s = s[i+1:]
		}
		if line == "" {
			dispatch()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			evType = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				lastID = value
			}
		}
	}
	dispatch()
	return events, rpc
}
