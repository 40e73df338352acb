package rules

import (
	"errors"
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

// TestLLMProviderKnown checks that an LLM-shaped request is marked as coming
// from a known provider only on the built-in provider hosts and on
// CatalogOptions.LLMHosts: any host can accept a body shaped like a chat
// completion.
func TestLLMProviderKnown(t *testing.T) {
	t.Parallel()
	c, err := LoadCatalog(CatalogOptions{Builtin: true, LLMHosts: []string{"llm.corp.example", "*.models.example", " .gw.example "}})
	if err != nil {
		t.Fatal(err)
	}
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, url string
		want      bool
	}{
		{"built-in provider", "https://api.openai.com/v1/chat/completions", true},
		{"built-in suffix provider", "https://acme.openai.azure.com/openai/deployments/d/chat/completions", true},
		{"configured host", "https://llm.corp.example/v1/chat/completions", true},
		{"configured wildcard", "https://eu.models.example/v1/chat/completions", true},
		{"configured dot suffix", "https://a.gw.example/v1/chat/completions", true},
		{"wildcard does not cover the apex", "https://models.example/v1/chat/completions", false},
		{"unknown host with the shape", "https://collector.attacker.example/v1/chat/completions", false},
		{"look-alike host", "https://api.openai.com.attacker.example/v1/chat/completions", false},
		{"configured name as a prefix only", "https://llm.corp.example.attacker.example/v1/chat/completions", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := []byte("POST " + tc.url + " HTTP/1.1\nContent-Type: application/json\n\n" + chat + "\n")
			m, err := mapRequestFile(t, c, tc.name, data)
			if err != nil {
				t.Fatal(err)
			}
			if m.LLM == nil || len(m.Actions) != 1 || m.Actions[0].Tool != llmTool {
				t.Fatalf("got %+v, want one llm action", m)
			}
			if got := m.LLM.KnownProvider; got != tc.want {
				t.Errorf("LLM.KnownProvider: got %v, want %v", got, tc.want)
			}
			if got := m.Actions[0].Parameters["provider_known"]; got != tc.want {
				t.Errorf("parameters.provider_known: got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLLMHostsInvalid(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"", "https://llm.example", "llm.example:8000", "llm.example/v1", "*"} {
		if _, err := LoadCatalog(CatalogOptions{LLMHosts: []string{h}}); !errors.Is(err, ErrPackInvalid) {
			t.Errorf("LLMHosts %q: got %v, want ErrPackInvalid", h, err)
		}
	}
}
