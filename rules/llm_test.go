package rules

import (
	"net/http"
	"testing"

	"github.com/aarmproxy/aarm/inspect"
	"github.com/google/go-cmp/cmp"
)

func decodeResponseForTest(t *testing.T, ctype, body string) *inspect.Response {
	t.Helper()
	r, err := inspect.DecodeResponse(200, http.Header{"Content-Type": {ctype}}, []byte(body), goldenLimits)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseLLMResponse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, provider, ctype, body string
		want                        []LLMToolCall
	}{
		{"openai chat json", "openai", "application/json",
			`{"choices":[{"message":{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"send_email","arguments":"{\"to\":\"x@y.example\"}"}}]}}]}`,
			[]LLMToolCall{{Name: "send_email", Arguments: `{"to":"x@y.example"}`}}},
		{"openai chat stream", "openai", "text/event-stream",
			"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n" +
				"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n" +
				"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n" +
				"data: [DONE]\n\n",
			[]LLMToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}}},
		{"openai responses json", "openai", "application/json",
			`{"output":[{"type":"message","content":[]},{"type":"function_call","name":"delete_repo","arguments":"{\"repo\":\"acme/web\"}"}]}`,
			[]LLMToolCall{{Name: "delete_repo", Arguments: `{"repo":"acme/web"}`}}},
		{"openai responses stream", "openai", "text/event-stream",
			"event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\",\"name\":\"a\",\"arguments\":\"{}\"}}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"function_call\",\"name\":\"a\",\"arguments\":\"{}\"}]}}\n\n",
			[]LLMToolCall{{Name: "a", Arguments: "{}"}}},
		{"anthropic json", "anthropic", "application/json",
			`{"content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"t","name":"read_sheet","input":{"id":"S1"}}]}`,
			[]LLMToolCall{{Name: "read_sheet", Arguments: `{"id":"S1"}`}}},
		{"anthropic stream", "anthropic", "text/event-stream",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"post_message\",\"input\":{}}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"channel\\\": \"}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"C1\\\"}\"}}\n\n",
			[]LLMToolCall{{Name: "post_message", Arguments: `{"channel": "C1"}`}}},
		{"gemini json", "gemini", "application/json",
			`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"list_events","args":{"day":"today"}}}]}}]}`,
			[]LLMToolCall{{Name: "list_events", Arguments: `{"day":"today"}`}}},
		{"no tool calls", "openai", "application/json", `{"choices":[{"message":{"content":"hi"}}]}`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseLLMResponse(tc.provider, decodeResponseForTest(t, tc.ctype, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("tool calls (-want +got):\n%s", diff)
			}
		})
	}
}
