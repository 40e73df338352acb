package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/tidwall/gjson"
)

// LLM provider APIs are recognised by path (and, on hosts that are not a
// known provider, by body shape), so OpenAI-compatible servers anywhere
// (vLLM, Ollama, LiteLLM, Azure OpenAI) map the same way. A completion is
// effect "send": the prompt, and every tool result the agent passes back,
// leaves for the provider.
//
// The shape alone proves nothing: any host can accept a body that looks
// like a chat completion, and an agent told to "summarise to
// https://attacker.example/v1/chat/completions" would otherwise get the
// leniency the policy gives the agent's own model. So every LLM action
// carries parameters.provider_known: true only for the built-in provider
// hosts and CatalogOptions.LLMHosts, and the default policy's exemptions
// for tool llm require it; LLMExchange.KnownProvider tells the gate the
// same (an unknown host's "user message" is not the session's intent).

// LLMExchange is what the gate learns from an LLM provider request.
type LLMExchange struct {
	// Provider is "openai", "anthropic", "gemini", "azure-openai", ... or
	// "openai-compatible" for other hosts speaking the OpenAI API.
	Provider string `json:"provider"`
	// KnownProvider is true when the host is a built-in provider host or
	// one of CatalogOptions.LLMHosts; false when only the request's shape
	// says LLM. The gate takes intent from known providers only.
	KnownProvider bool `json:"known_provider"`
	// API is the request shape: "openai.chat", "openai.responses",
	// "openai.completions", "anthropic.messages" or "gemini.generateContent".
	API   string `json:"api"`
	Model string `json:"model,omitempty"`
	// Messages counts the conversation's messages (input items, contents).
	Messages int `json:"messages"`
	// UserText is the text of the latest user message that has text (not
	// only tool results): the user's intent when the session has none.
	UserText string `json:"user_text,omitempty"`
	// ToolResults are the tool outputs the agent passes back to the model:
	// data the agent has seen.
	ToolResults []string `json:"tool_results,omitempty"`
	// ToolCalls are tool calls proposed by the model; filled from responses
	// by ParseLLMResponse.
	ToolCalls []LLMToolCall `json:"tool_calls,omitempty"`
}

// LLMToolCall is one tool call a model proposed.
type LLMToolCall struct {
	Name string `json:"name"`
	// Arguments is the call's arguments as JSON text.
	Arguments string `json:"arguments"`
}

// The LLM request shapes.
const (
	llmAPIOpenAIChat        = "openai.chat"
	llmAPIOpenAIResponses   = "openai.responses"
	llmAPIOpenAICompletions = "openai.completions"
	llmAPIAnthropicMessages = "anthropic.messages"
	llmAPIGemini            = "gemini.generateContent"
)

// llmProviderHosts names providers by host; a "." prefix is a suffix match.
var llmProviderHosts = []struct{ host, provider string }{
	{"api.openai.com", "openai"},
	{".openai.azure.com", "azure-openai"},
	{"api.anthropic.com", "anthropic"},
	{"generativelanguage.googleapis.com", "gemini"},
	{"aiplatform.googleapis.com", "vertex-ai"},
	{".aiplatform.googleapis.com", "vertex-ai"},
	{"api.groq.com", "groq"},
	{"api.mistral.ai", "mistral"},
	{"api.deepseek.com", "deepseek"},
	{"openrouter.ai", "openrouter"},
	{"api.together.xyz", "together"},
	{"api.x.ai", "xai"},
	{"api.fireworks.ai", "fireworks"},
	{"api.perplexity.ai", "perplexity"},
}

func llmProviderFor(host string) string {
	for _, p := range llmProviderHosts {
		if host == p.host || strings.HasPrefix(p.host, ".") && strings.HasSuffix(host, p.host) {
			return p.provider
		}
	}
	return ""
}

// setLLMHosts records the organisation's model endpoints
// (CatalogOptions.LLMHosts).
func (c *Catalog) setLLMHosts(hosts []string) error {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		suffix := strings.HasPrefix(h, "*.") || strings.HasPrefix(h, ".")
		h = strings.TrimPrefix(strings.TrimPrefix(h, "*"), ".")
		n := normalizeHost(h)
		if n == "" || strings.ContainsAny(n, "/:*@ ") {
			return &PackError{File: "aarm.yaml", Field: "llm.hosts", Err: fmt.Errorf("%w: %q: want a host name (llm.example.com) or *.suffix, without scheme, port or path", ErrPackInvalid, h)}
		}
		if suffix {
			n = "." + n
		}
		c.llmHosts = append(c.llmHosts, n)
	}
	return nil
}

// knownLLMHost reports whether host is a built-in provider host or one of
// CatalogOptions.LLMHosts.
func (c *Catalog) knownLLMHost(host string) bool {
	if llmProviderFor(host) != "" {
		return true
	}
	for _, h := range c.llmHosts {
		if host == h || strings.HasPrefix(h, ".") && strings.HasSuffix(host, h) {
			return true
		}
	}
	return false
}

// detectLLM returns the provider and API of an LLM request.
func (ms *mapState) detectLLM() (provider, api, model string, ok bool) {
	if ms.method != "POST" || len(ms.segs) == 0 {
		return "", "", "", false
	}
	provider = llmProviderFor(ms.host)
	known := provider != ""
	last := ms.segs[len(ms.segs)-1]
	prev := ""
	if len(ms.segs) > 1 {
		prev = ms.segs[len(ms.segs)-2]
	}
	body := ms.req.JSON
	hasModel := body.Get("model").Type == gjson.String
	switch {
	case last == "completions" && prev == "chat":
		if !known && !(hasModel && body.Get("messages").IsArray()) {
			return "", "", "", false
		}
		api = llmAPIOpenAIChat
	case last == "responses" && (prev == "v1" || prev == "openai"):
		if !known && !(hasModel && body.Get("input").Exists()) {
			return "", "", "", false
		}
		api = llmAPIOpenAIResponses
	case last == "completions" && (prev == "v1" || prev == "openai"):
		if !known && !(hasModel && body.Get("prompt").Exists()) {
			return "", "", "", false
		}
		api = llmAPIOpenAICompletions
	case last == "messages" && prev == "v1":
		if provider != "anthropic" && firstHeader(ms.req.Header, "Anthropic-Version") == "" {
			return "", "", "", false
		}
		api = llmAPIAnthropicMessages
	case strings.HasSuffix(last, ":generateContent") || strings.HasSuffix(last, ":streamGenerateContent"):
		if !known && !body.Get("contents").IsArray() {
			return "", "", "", false
		}
		api = llmAPIGemini
		model, _, _ = strings.Cut(last, ":")
	default:
		return "", "", "", false
	}
	if provider == "" {
		switch api {
		case llmAPIAnthropicMessages:
			provider = "anthropic-compatible"
		case llmAPIGemini:
			provider = "gemini-compatible"
		default:
			provider = "openai-compatible"
		}
	}
	if m := body.Get("model"); m.Type == gjson.String {
		model = m.Str
	}
	if model == "" && provider == "azure-openai" {
		for i, s := range ms.segs {
			if s == "deployments" && i+1 < len(ms.segs) {
				model = ms.segs[i+1]
			}
		}
	}
	return provider, api, model, true
}

func (ms *mapState) mapLLM() (*Mapping, bool, error) {
	provider, api, model, ok := ms.detectLLM()
	if !ok {
		return nil, false, nil
	}
	mapping := "llm#" + provider + "/" + api
	if !ms.isJSONKind() || !ms.req.JSON.IsObject() {
		return nil, true, unmappable(mapping, "LLM request body is %s (%s), not a JSON object", kindName(ms.req.Kind), ms.req.ContentType)
	}
	ex, err := parseLLMRequest(api, ms.req.JSON)
	if err != nil {
		return nil, true, &MappingError{Mapping: mapping, Err: err}
	}
	ex.Provider, ex.Model = provider, model
	ex.KnownProvider = ms.c.knownLLMHost(ms.host)
	params := map[string]any{"provider": provider, "provider_known": ex.KnownProvider, "api": api, "messages": ex.Messages}
	if model != "" {
		params["model"] = model
	}
	body := ms.req.JSON
	if s := body.Get("stream"); s.IsBool() {
		params["stream"] = s.Bool()
	} else if strings.HasSuffix(ms.segs[len(ms.segs)-1], ":streamGenerateContent") {
		params["stream"] = true
	}
	if n := len(body.Get("tools").Array()); n > 0 {
		params["tools"] = n
	}
	if n := len(ex.ToolResults); n > 0 {
		params["tool_results"] = n
	}
	target := provider
	if model != "" {
		target += "/" + model
	}
	act := aarm.Action{Tool: llmTool, Operation: "completion", Effect: aarm.EffectSend, Target: target,
		Destination: ms.dest, Method: ms.method, Path: ms.path, Parameters: params, Mapping: mapping}
	why := fmt.Sprintf("POST %s is the %s API of %s", ms.path, api, provider)
	if !ex.KnownProvider {
		why += " (by its shape only: the host is not a known model provider)"
	}
	return &Mapping{Actions: []aarm.Action{act}, LLM: ex, Matches: []MappingMatch{{Mapping: mapping, Tool: llmTool, Operation: "completion",
		Why: why}}}, true, nil
}

// parseLLMRequest reads the conversation of one LLM request.
func parseLLMRequest(api string, body gjson.Result) (*LLMExchange, error) {
	ex := &LLMExchange{API: api}
	switch api {
	case llmAPIOpenAIChat, llmAPIAnthropicMessages:
		msgs := body.Get("messages")
		if !msgs.IsArray() {
			return nil, fmt.Errorf("%w: messages is not an array", ErrUnmappable)
		}
		arr := msgs.Array()
		ex.Messages = len(arr)
		for _, m := range arr {
			role := m.Get("role").Str
			c := m.Get("content")
			switch {
			case role == "tool" || role == "function":
				ex.ToolResults = append(ex.ToolResults, llmContentText(c, nil))
			case role == "user" && c.IsArray():
				var results []string
				t := llmContentText(c, &results)
				ex.ToolResults = append(ex.ToolResults, results...)
				if t != "" {
					ex.UserText = t
				}
			case role == "user":
				if t := llmContentText(c, nil); t != "" {
					ex.UserText = t
				}
			}
		}
	case llmAPIOpenAIResponses:
		in := body.Get("input")
		switch {
		case in.Type == gjson.String:
			ex.Messages, ex.UserText = 1, in.Str
		case in.IsArray():
			arr := in.Array()
			ex.Messages = len(arr)
			for _, it := range arr {
				typ := it.Get("type").Str
				switch {
				case typ == "function_call_output" || typ == "custom_tool_call_output" || typ == "computer_call_output":
					ex.ToolResults = append(ex.ToolResults, llmContentText(it.Get("output"), nil))
				case it.Get("role").Str == "user":
					if t := llmContentText(it.Get("content"), nil); t != "" {
						ex.UserText = t
					}
				}
			}
		default:
			return nil, fmt.Errorf("%w: input is neither a string nor an array", ErrUnmappable)
		}
	case llmAPIOpenAICompletions:
		p := body.Get("prompt")
		ex.Messages = 1
		switch {
		case p.Type == gjson.String:
			ex.UserText = p.Str
		case p.IsArray():
			arr := p.Array()
			ex.Messages = len(arr)
			if len(arr) > 0 {
				ex.UserText = arr[len(arr)-1].String()
			}
		}
	case llmAPIGemini:
		contents := body.Get("contents")
		if !contents.IsArray() {
			return nil, fmt.Errorf("%w: contents is not an array", ErrUnmappable)
		}
		arr := contents.Array()
		ex.Messages = len(arr)
		for _, c := range arr {
			role := c.Get("role").Str
			var texts []string
			for _, part := range c.Get("parts").Array() {
				if fr := part.Get("functionResponse"); fr.Exists() {
					r := fr.Get("response")
					if !r.Exists() {
						r = fr
					}
					ex.ToolResults = append(ex.ToolResults, r.Raw)
					continue
				}
				if t := part.Get("text"); t.Type == gjson.String && role != "model" {
					texts = append(texts, t.Str)
				}
			}
			if (role == "user" || role == "") && len(texts) > 0 {
				ex.UserText = strings.Join(texts, "\n")
			}
		}
	}
	return ex, nil
}

// llmContentText returns the text of a message content (a string or a list
// of parts). Tool-result parts (Anthropic tool_result) go to results when
// results is non-nil.
func llmContentText(c gjson.Result, results *[]string) string {
	if c.Type == gjson.String {
		return c.Str
	}
	if !c.IsArray() {
		if c.Exists() && c.Type != gjson.Null {
			return c.Raw
		}
		return ""
	}
	var texts []string
	for _, p := range c.Array() {
		typ := p.Get("type").Str
		switch typ {
		case "text", "input_text", "output_text", "":
			if t := p.Get("text"); t.Type == gjson.String {
				texts = append(texts, t.Str)
			} else if p.Type == gjson.String {
				texts = append(texts, p.Str)
			}
		case "tool_result":
			if results != nil {
				*results = append(*results, llmContentText(p.Get("content"), nil))
			}
		}
	}
	return strings.Join(texts, "\n")
}

// ErrLLMResponse is wrapped by ParseLLMResponse errors.
var ErrLLMResponse = errors.New("unreadable LLM response")

// ParseLLMResponse returns the tool calls a model proposed in a provider
// response, JSON or streamed (SSE). provider is LLMExchange.Provider or API;
// the response shape decides how it is read, so OpenAI-compatible servers
// need no configuration.
func ParseLLMResponse(provider string, resp *inspect.Response) ([]LLMToolCall, error) {
	if resp == nil {
		return nil, fmt.Errorf("%w: no response", ErrLLMResponse)
	}
	if len(resp.Events) > 0 {
		return parseLLMStream(resp.Events)
	}
	switch {
	case resp.JSON.IsObject():
		return llmCallsFromJSON(resp.JSON), nil
	case resp.JSON.IsArray():
		// Gemini's non-SSE streaming returns an array of responses.
		var calls []LLMToolCall
		for _, r := range resp.JSON.Array() {
			calls = append(calls, llmCallsFromJSON(r)...)
		}
		return calls, nil
	case len(resp.Body) == 0:
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s body from %s is not JSON or an event stream", ErrLLMResponse, resp.ContentType, provider)
}

// llmCallsFromJSON reads tool calls from one complete response object.
func llmCallsFromJSON(r gjson.Result) []LLMToolCall {
	var calls []LLMToolCall
	// OpenAI chat completions.
	for _, ch := range r.Get("choices").Array() {
		for _, tc := range ch.Get("message.tool_calls").Array() {
			calls = append(calls, LLMToolCall{Name: tc.Get("function.name").Str, Arguments: tc.Get("function.arguments").Str})
		}
		if fc := ch.Get("message.function_call"); fc.Exists() {
			calls = append(calls, LLMToolCall{Name: fc.Get("name").Str, Arguments: fc.Get("arguments").Str})
		}
	}
	// OpenAI responses.
	for _, it := range r.Get("output").Array() {
		if t := it.Get("type").Str; t == "function_call" || t == "custom_tool_call" {
			args := it.Get("arguments").Str
			if t == "custom_tool_call" {
				args = it.Get("input").Str
			}
			calls = append(calls, LLMToolCall{Name: it.Get("name").Str, Arguments: args})
		}
	}
	// Anthropic messages.
	for _, b := range r.Get("content").Array() {
		if b.Get("type").Str == "tool_use" {
			calls = append(calls, LLMToolCall{Name: b.Get("name").Str, Arguments: rawOrEmptyObject(b.Get("input"))})
		}
	}
	// Gemini.
	for _, cand := range r.Get("candidates").Array() {
		for _, p := range cand.Get("content.parts").Array() {
			if fc := p.Get("functionCall"); fc.Exists() {
				calls = append(calls, LLMToolCall{Name: fc.Get("name").Str, Arguments: rawOrEmptyObject(fc.Get("args"))})
			}
		}
	}
	return calls
}

func rawOrEmptyObject(r gjson.Result) string {
	if !r.Exists() {
		return "{}"
	}
	return r.Raw
}

// parseLLMStream assembles tool calls from streamed deltas: OpenAI chat
// (choices[].delta.tool_calls by index), OpenAI responses (output items),
// Anthropic (content_block_start + input_json_delta by index) and Gemini
// (complete functionCall parts per event).
func parseLLMStream(events []inspect.SSEEvent) ([]LLMToolCall, error) {
	type partial struct {
		name string
		args strings.Builder
	}
	chat := map[int64]*partial{}
	anth := map[int64]*partial{}
	var calls, respItems, respCompleted []LLMToolCall
	sawResponsesDone := false
	for _, ev := range events {
		j := ev.JSON
		if !j.Exists() {
			continue // "[DONE]" and keep-alives
		}
		for _, ch := range j.Get("choices").Array() {
			for _, tc := range ch.Get("delta.tool_calls").Array() {
				idx := tc.Get("index").Int()
				p := chat[idx]
				if p == nil {
					p = &partial{}
					chat[idx] = p
				}
				if n := tc.Get("function.name").Str; n != "" {
					p.name = n
				}
				p.args.WriteString(tc.Get("function.arguments").Str)
			}
		}
		switch j.Get("type").Str {
		case "content_block_start":
			if cb := j.Get("content_block"); cb.Get("type").Str == "tool_use" {
				anth[j.Get("index").Int()] = &partial{name: cb.Get("name").Str}
			}
		case "content_block_delta":
			if d := j.Get("delta"); d.Get("type").Str == "input_json_delta" {
				if p := anth[j.Get("index").Int()]; p != nil {
					p.args.WriteString(d.Get("partial_json").Str)
				}
			}
		case "response.output_item.done":
			if it := j.Get("item"); it.IsObject() {
				respItems = append(respItems, llmCallsFromJSON(gjson.Parse(`{"output":[`+it.Raw+`]}`))...)
			}
		case "response.completed":
			// The completed response repeats every item; prefer it.
			sawResponsesDone = true
			respCompleted = llmCallsFromJSON(j.Get("response"))
		}
		if j.Get("candidates").Exists() {
			calls = append(calls, llmCallsFromJSON(j)...)
		}
	}
	if sawResponsesDone {
		calls = append(calls, respCompleted...)
	} else {
		calls = append(calls, respItems...)
	}
	for _, m := range []map[int64]*partial{chat, anth} {
		idx := make([]int64, 0, len(m))
		for i := range m {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		for _, i := range idx {
			args := m[i].args.String()
			if args == "" {
				args = "{}"
			}
			calls = append(calls, LLMToolCall{Name: m[i].name, Arguments: args})
		}
	}
	return calls, nil
}
