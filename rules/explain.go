package rules

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
)

// Explanation is what `aarm rules explain FILE` prints: the request as read,
// the actions it maps to and which rule produced each, and why.
type Explanation struct {
	Method  string         `json:"method"`
	URL     string         `json:"url"`
	Kind    string         `json:"body_kind"`
	Actions []aarm.Action  `json:"actions"`
	Matches []MappingMatch `json:"matches"`
	LLM     *LLMExchange   `json:"llm,omitempty"`
}

// Explain parses a raw request file (see ParseHTTPRequestFile), decodes it
// as the gate would and maps it with c. Decoding and mapping errors are
// returned as they are (the gate would deny the request with them).
func Explain(c *Catalog, name string, data []byte, lim inspect.Limits) (*Explanation, error) {
	method, u, h, body, err := ParseHTTPRequestFile(name, data)
	if err != nil {
		return nil, err
	}
	req, err := inspect.DecodeRequest(method, u, h, body, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: decoding the request body: %w", name, err)
	}
	m, err := c.Map(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Explanation{Method: method, URL: u.String(), Kind: string(req.Kind), Actions: m.Actions, Matches: m.Matches, LLM: m.LLM}, nil
}

// WriteText prints the explanation for people: one block per action with
// the rule that matched and why, then the actions as indented JSON.
func (e *Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "request: %s %s (body: %s)\n", e.Method, e.URL, e.Kind)
	for i, a := range e.Actions {
		fmt.Fprintf(&b, "\naction %d: %s / %s  effect=%s  target=%q  external=%t\n", i+1, a.Tool, a.Operation, a.Effect, a.Target, a.Destination.External)
		if i < len(e.Matches) {
			m := e.Matches[i]
			if m.File != "" {
				fmt.Fprintf(&b, "  rule: %s (%s:%d)\n", m.Mapping, m.File, m.Line)
			} else {
				fmt.Fprintf(&b, "  rule: %s\n", m.Mapping)
			}
			fmt.Fprintf(&b, "  why:  %s\n", m.Why)
		}
	}
	if e.LLM != nil {
		fmt.Fprintf(&b, "\nLLM: provider=%s api=%s model=%s messages=%d tool_results=%d\n", e.LLM.Provider, e.LLM.API, e.LLM.Model, e.LLM.Messages, len(e.LLM.ToolResults))
		if e.LLM.UserText != "" {
			fmt.Fprintf(&b, "  latest user text: %q\n", truncateText(e.LLM.UserText, 200))
		}
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(e.Actions)
}

// PackInfo describes one rule pack for `aarm rules list`.
type PackInfo struct {
	Tool        string          `json:"tool"`
	Description string          `json:"description,omitempty"`
	File        string          `json:"file"`
	Hosts       []string        `json:"hosts"`
	External    bool            `json:"external"`
	Operations  []PackOperation `json:"operations"`
}

// PackOperation describes one operation of a pack.
type PackOperation struct {
	Operation   string      `json:"operation"`
	Description string      `json:"description,omitempty"`
	Methods     []string    `json:"methods,omitempty"`
	Path        string      `json:"path"`
	Effect      aarm.Effect `json:"effect"`
	Line        int         `json:"line"`
	// Overridden is true when a later user pack replaced this operation.
	Overridden bool `json:"overridden,omitempty"`
}

// Packs lists the catalog's packs in load order, then the built-in MCP, LLM
// and fallback mappings, which are code rather than packs.
func (c *Catalog) Packs() []PackInfo {
	out := make([]PackInfo, 0, len(c.packs)+3)
	for _, pk := range c.packs {
		pi := PackInfo{Tool: pk.tool, Description: pk.description, File: pk.file, External: pk.external}
		for _, h := range pk.hosts {
			pi.Hosts = append(pi.Hosts, h.canon)
		}
		for _, a := range pk.actions {
			pi.Operations = append(pi.Operations, PackOperation{
				Operation: a.operation, Description: a.description, Methods: a.methods,
				Path: a.path.text, Effect: a.effect, Line: a.line, Overridden: a.replaced,
			})
		}
		out = append(out, pi)
	}
	mcpOps := []PackOperation{{Operation: "<tool name>", Description: "tools/call: effect from the tool name's verbs, execute when none is known; meta-tool wrappers resolved", Methods: []string{"POST"}, Path: "*", Effect: aarm.EffectExecute}}
	var methods []string
	for m := range mcpMethods {
		if m != "tools/call" {
			methods = append(methods, m)
		}
	}
	sort.Strings(methods)
	for _, m := range methods {
		eff := mcpMethods[m]
		mcpOps = append(mcpOps, PackOperation{Operation: m, Methods: []string{"POST"}, Path: "*", Effect: eff})
	}
	out = append(out,
		PackInfo{Tool: "mcp:<server>", Description: "MCP over HTTP: JSON-RPC bodies on any host (rules/mcp.go)", File: "builtin", Hosts: []string{"*"}, External: true, Operations: mcpOps},
		PackInfo{Tool: llmTool, Description: "LLM provider APIs: OpenAI chat/responses/completions, Anthropic messages, Gemini generateContent, OpenAI-compatible paths on any host (rules/llm.go)", File: "builtin", Hosts: llmHostList(), External: true,
			Operations: []PackOperation{{Operation: "completion", Methods: []string{"POST"}, Path: "*/chat/completions, */v1/responses, */v1/completions, /v1/messages, *:generateContent", Effect: aarm.EffectSend}}},
		PackInfo{Tool: fallbackTool, Description: "Generic fallback for requests no pack matches: operation http.<method>, effect by method", File: "builtin", Hosts: []string{"*"}, External: true,
			Operations: []PackOperation{
				{Operation: "http.get", Methods: []string{"GET", "HEAD", "OPTIONS"}, Path: "*", Effect: aarm.EffectRead},
				{Operation: "http.delete", Methods: []string{"DELETE"}, Path: "*", Effect: aarm.EffectDelete},
				{Operation: "http.<method>", Description: "POST, PUT, PATCH and any other method", Path: "*", Effect: aarm.EffectWrite},
			}},
	)
	return out
}

func llmHostList() []string {
	out := make([]string, 0, len(llmProviderHosts))
	for _, p := range llmProviderHosts {
		h := p.host
		if strings.HasPrefix(h, ".") {
			h = "*" + h
		}
		out = append(out, h)
	}
	return out
}
