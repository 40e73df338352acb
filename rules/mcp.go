package rules

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/tidwall/gjson"
)

// MCP over HTTP (streamable HTTP and the older HTTP+SSE transport) is
// recognised on any host by its JSON-RPC body: the catalog's hosts do not
// matter, because an agent can reach an MCP server anywhere.
//
// AARM requires wrapper ("meta") tools to be resolved to the real tool
// before policy runs: a tools/call of call_tool{server, tool, arguments} is
// judged as the inner tool.

// DefaultMCPMetaTools are the wrapper tool names resolved to the tool their
// arguments name, when CatalogOptions.MCPMetaTools is nil.
var DefaultMCPMetaTools = []string{"call_tool", "use_tool", "invoke_tool", "execute_tool", "run_tool", "mcp_call"}

// mcpMetaMaxDepth bounds nested wrappers (a wrapper calling a wrapper).
const mcpMetaMaxDepth = 4

// mcpMethods are the client→server MCP methods that identify an MCP request.
var mcpMethods = map[string]aarm.Effect{
	"initialize":               aarm.EffectRead,
	"ping":                     aarm.EffectRead,
	"tools/list":               aarm.EffectRead,
	"tools/call":               "", // by the tool name
	"resources/list":           aarm.EffectRead,
	"resources/templates/list": aarm.EffectRead,
	"resources/read":           aarm.EffectRead,
	"resources/subscribe":      aarm.EffectRead,
	"resources/unsubscribe":    aarm.EffectRead,
	"prompts/list":             aarm.EffectRead,
	"prompts/get":              aarm.EffectRead,
	"completion/complete":      aarm.EffectRead,
	"logging/setLevel":         aarm.EffectWrite,
}

func isMCPMethod(m string) bool {
	if _, ok := mcpMethods[m]; ok {
		return true
	}
	return strings.HasPrefix(m, "notifications/")
}

// mcpServerName maps a host[:port] or URL prefix to a server name.
type mcpServerName struct {
	hostPort string // "host:port" or "host" (any port)
	path     string // URL prefix path, "" for host keys
	name     string
}

func (c *Catalog) setMCP(servers map[string]string, meta []string) error {
	keys := make([]string, 0, len(servers))
	for k := range servers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.ToLower(strings.TrimSpace(servers[k]))
		if name == "" || !packToolRe.MatchString(name) {
			return &PackError{File: "aarm.yaml", Field: "mcp.servers." + k, Err: fmt.Errorf("%w: server name %q: want lower-case letters, digits and _.:-", ErrPackInvalid, servers[k])}
		}
		e := mcpServerName{name: name}
		if strings.Contains(k, "://") {
			u, err := url.Parse(k)
			if err != nil || u.Host == "" {
				return &PackError{File: "aarm.yaml", Field: "mcp.servers." + k, Err: fmt.Errorf("%w: not a URL prefix", ErrPackInvalid)}
			}
			e.hostPort = normalizeHost(u.Hostname()) + ":" + portOrDefault(u.Port(), u.Scheme)
			e.path = strings.TrimSuffix(u.EscapedPath(), "/")
		} else {
			h, p, found := strings.Cut(k, ":")
			e.hostPort = normalizeHost(h)
			if found {
				e.hostPort += ":" + p
			}
		}
		c.mcpServers = append(c.mcpServers, e)
	}
	// Most specific first: URL prefixes by length, then host:port, then host.
	sort.SliceStable(c.mcpServers, func(i, j int) bool {
		a, b := c.mcpServers[i], c.mcpServers[j]
		if (a.path != "") != (b.path != "") {
			return a.path != ""
		}
		if len(a.path) != len(b.path) {
			return len(a.path) > len(b.path)
		}
		return strings.Contains(a.hostPort, ":") && !strings.Contains(b.hostPort, ":")
	})
	if meta == nil {
		meta = DefaultMCPMetaTools
	}
	c.mcpMeta = make(map[string]bool, len(meta))
	for _, m := range meta {
		c.mcpMeta[m] = true
	}
	return nil
}

func portOrDefault(port, scheme string) string {
	if port != "" {
		return port
	}
	if strings.EqualFold(scheme, "http") {
		return "80"
	}
	return "443"
}

func (ms *mapState) mcpServer() string {
	hp := ms.host + ":" + ms.dest.Port
	for _, e := range ms.c.mcpServers {
		switch {
		case e.path != "":
			if e.hostPort == hp && (ms.path == e.path || strings.HasPrefix(ms.path, e.path+"/")) {
				return e.name
			}
		case strings.Contains(e.hostPort, ":"):
			if e.hostPort == hp {
				return e.name
			}
		case e.hostPort == ms.host:
			return e.name
		}
	}
	return ms.host
}

// mapMCP maps MCP requests; ok is false when the request is not MCP.
func (ms *mapState) mapMCP() (*Mapping, bool, error) {
	req := ms.req
	if len(req.JSONRPC) == 0 {
		return ms.mapMCPNonCall()
	}
	isMCP := false
	for _, m := range req.JSONRPC {
		// A message without a method is a client's response to a server
		// request (sampling, elicitation, roots), which only MCP sends.
		if isMCPMethod(m.Method) || m.Method == "" {
			isMCP = true
			break
		}
	}
	if !isMCP {
		return nil, false, nil
	}
	server := ms.mcpServer()
	m := &Mapping{}
	for i := range req.JSONRPC {
		act, match, err := ms.mcpAction(server, &req.JSONRPC[i])
		if err != nil {
			return nil, true, err
		}
		m.Actions = append(m.Actions, act)
		m.Matches = append(m.Matches, match)
	}
	return m, true, nil
}

// mapMCPNonCall recognises the MCP messages that carry no request method: a
// client's JSON-RPC response to a server request (sampling, elicitation,
// roots: data flows to the server), and the streamable-HTTP session's
// stream GET and teardown DELETE.
func (ms *mapState) mapMCPNonCall() (*Mapping, bool, error) {
	req := ms.req
	base := aarm.Action{Destination: ms.dest, Method: ms.method, Path: ms.path}
	if req.Kind == inspect.KindJSON && req.JSON.Get("jsonrpc").Str == "2.0" && req.JSON.Get("id").Exists() &&
		!req.JSON.Get("method").Exists() && (req.JSON.Get("result").Exists() || req.JSON.Get("error").Exists()) {
		server := ms.mcpServer()
		act := base
		act.Tool, act.Operation, act.Effect, act.Target = "mcp:"+server, "response", aarm.EffectSend, server
		act.Mapping = "mcp#response"
		if v, ok, _ := gjsonValue(req.JSON, "result"); ok {
			act.Parameters = map[string]any{"result": v}
		}
		return &Mapping{Actions: []aarm.Action{act}, Matches: []MappingMatch{{Mapping: act.Mapping, Tool: act.Tool, Operation: act.Operation,
			Why: "JSON-RPC response body (no method): an MCP client answering a server request"}}}, true, nil
	}
	if len(req.Body) == 0 && firstHeader(req.Header, "Mcp-Session-Id") != "" && (ms.method == "GET" || ms.method == "DELETE") {
		server := ms.mcpServer()
		act := base
		act.Tool, act.Effect, act.Target = "mcp:"+server, aarm.EffectRead, server
		act.Operation = "session.stream"
		if ms.method == "DELETE" {
			act.Operation = "session.end"
		}
		act.Mapping = "mcp#" + act.Operation
		return &Mapping{Actions: []aarm.Action{act}, Matches: []MappingMatch{{Mapping: act.Mapping, Tool: act.Tool, Operation: act.Operation,
			Why: "streamable-HTTP MCP session request (Mcp-Session-Id header, no body)"}}}, true, nil
	}
	return nil, false, nil
}

func (ms *mapState) mcpAction(server string, msg *inspect.JSONRPCMessage) (aarm.Action, MappingMatch, error) {
	act := aarm.Action{Destination: ms.dest, Method: ms.method, Path: ms.path, Tool: "mcp:" + server, Target: server}
	mapping := "mcp#" + msg.Method
	why := "JSON-RPC method " + msg.Method + " is MCP; server " + server
	switch {
	case msg.Method == "":
		// The client answers a server request: data flows to the server.
		act.Operation, act.Effect = "response", aarm.EffectSend
		mapping = "mcp#response"
		why = "JSON-RPC response (no method): an MCP client answering a server request; server " + server
		if v, ok, _ := gjsonValue(msg.Result, ""); ok {
			act.Parameters = map[string]any{"result": v}
		} else if v, ok, _ := gjsonValue(msg.Error, ""); ok {
			act.Parameters = map[string]any{"error": v}
		}
	case msg.Method == "tools/call":
		name, args, via, innerServer, err := ms.resolveMCPCall(msg.Params)
		if err != nil {
			return act, MappingMatch{}, &MappingError{Mapping: mapping, Err: err}
		}
		if innerServer != "" {
			server = innerServer
			act.Tool = "mcp:" + innerServer
		}
		act.Operation = name
		act.Effect = mcpToolEffect(name)
		act.Target = mcpTarget(args)
		if act.Target == "" {
			act.Target = server
		}
		act.Parameters = args
		if len(via) > 0 {
			act.Parameters["_via"] = strings.Join(via, ">")
			mapping += " via " + strings.Join(via, ">")
			why += fmt.Sprintf("; wrapper %s resolved to %s/%s", strings.Join(via, ">"), act.Tool, name)
		}
		act.Entities = mcpEntities(args)
		why += fmt.Sprintf("; effect %s from the tool name", act.Effect)
	case isMCPMethod(msg.Method):
		act.Operation = msg.Method
		act.Effect = mcpMethods[msg.Method]
		if act.Effect == "" {
			act.Effect = aarm.EffectRead // notifications/*
		}
		params := map[string]any{}
		switch msg.Method {
		case "resources/read", "resources/subscribe", "resources/unsubscribe":
			if uri := msg.Params.Get("uri"); uri.Type == gjson.String {
				params["uri"] = uri.Str
				act.Target = uri.Str
				act.Entities = []aarm.Entity{{Kind: aarm.EntityURL, Value: uri.Str, Param: "uri"}}
			}
		case "prompts/get":
			if n := msg.Params.Get("name"); n.Type == gjson.String {
				params["name"] = n.Str
				act.Target = n.Str
			}
			if v, ok, _ := gjsonValue(msg.Params, "arguments"); ok {
				params["arguments"] = v
			}
		case "initialize":
			for _, k := range []string{"protocolVersion", "clientInfo"} {
				if v, ok, _ := gjsonValue(msg.Params, k); ok {
					params[k] = v
				}
			}
		}
		if len(params) > 0 {
			act.Parameters = params
		}
	default:
		// A non-MCP method inside an MCP batch: unknown consequence.
		act.Operation = msg.Method
		act.Effect = aarm.EffectExecute
		why = "JSON-RPC method " + msg.Method + " in an MCP batch is not an MCP method; treated as execute"
	}
	act.Mapping = mapping
	return act, MappingMatch{Mapping: mapping, Tool: act.Tool, Operation: act.Operation, Why: why}, nil
}

var (
	mcpServerKeys = []string{"server", "server_name", "mcp_server"}
	mcpToolKeys   = []string{"tool", "tool_name", "name"}
	mcpArgKeys    = []string{"arguments", "args", "input", "params"}
)

// resolveMCPCall reads a tools/call's tool name and arguments, resolving
// meta-tool wrappers. It returns the inner server when a wrapper names one.
func (ms *mapState) resolveMCPCall(params gjson.Result) (name string, args map[string]any, via []string, server string, err error) {
	n := params.Get("name")
	if n.Type != gjson.String || n.Str == "" {
		return "", nil, nil, "", fmt.Errorf("%w: tools/call without a string params.name", ErrUnmappable)
	}
	name = n.Str
	argsRes := params.Get("arguments")
	for depth := 0; ; depth++ {
		args, err = mcpArguments(argsRes, "arguments of "+name)
		if err != nil {
			return "", nil, nil, "", err
		}
		if !ms.c.mcpMeta[name] {
			return name, args, via, server, nil
		}
		if depth >= mcpMetaMaxDepth {
			return "", nil, nil, "", fmt.Errorf("%w: meta-tool wrappers nested more than %d deep", ErrUnmappable, mcpMetaMaxDepth)
		}
		inner, ok, err := firstStringArg(argsRes, mcpToolKeys)
		if err != nil {
			return "", nil, nil, "", fmt.Errorf("%w: wrapper %s: %v", ErrUnmappable, name, err)
		}
		if !ok {
			return "", nil, nil, "", fmt.Errorf("%w: wrapper tool %s names no inner tool (want one of %s)", ErrUnmappable, name, strings.Join(mcpToolKeys, ", "))
		}
		srv, ok, err := firstStringArg(argsRes, mcpServerKeys)
		if err != nil {
			return "", nil, nil, "", fmt.Errorf("%w: wrapper %s: %v", ErrUnmappable, name, err)
		}
		if ok {
			server = strings.ToLower(srv)
		}
		via = append(via, name)
		name = inner
		next := gjson.Result{}
		for _, k := range mcpArgKeys {
			if v := argsRes.Get(gjsonEscape(k)); v.Exists() {
				next = v
				break
			}
		}
		if next.Type == gjson.String {
			// Some wrappers pass the inner arguments as a JSON string.
			if !gjson.Valid(next.Str) {
				return "", nil, nil, "", fmt.Errorf("%w: wrapper %s: inner arguments are a string that is not JSON", ErrUnmappable, via[len(via)-1])
			}
			next = gjson.Parse(next.Str)
		}
		argsRes = next
	}
}

func mcpArguments(r gjson.Result, what string) (map[string]any, error) {
	if !r.Exists() || r.Type == gjson.Null {
		return map[string]any{}, nil
	}
	if !r.IsObject() {
		return nil, fmt.Errorf("%w: %s must be an object", ErrUnmappable, what)
	}
	m, _ := r.Value().(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func firstStringArg(args gjson.Result, keys []string) (string, bool, error) {
	for _, k := range keys {
		v := args.Get(gjsonEscape(k))
		if !v.Exists() {
			continue
		}
		if v.Type != gjson.String || v.Str == "" {
			return "", false, fmt.Errorf("argument %s must be a non-empty string", k)
		}
		return v.Str, true, nil
	}
	return "", false, nil
}

// gjsonEscape escapes gjson path metacharacters in a literal key.
func gjsonEscape(k string) string {
	var b strings.Builder
	for _, r := range k {
		switch r {
		case '.', '*', '?', '|', '#', '@', '\\', '!', '=', '<', '>', '%':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mcpLexicon maps verbs found in MCP tool names to effects. "Strong" words
// count wherever they appear in the name ("list_and_delete_files" deletes);
// the others count only as the first lexicon word, since nouns like
// "message" or "post" name what a read returns ("list_messages").
var mcpLexicon = map[string]struct {
	effect aarm.Effect
	strong bool
}{
	// delete
	"delete": {aarm.EffectDelete, true}, "remove": {aarm.EffectDelete, true}, "drop": {aarm.EffectDelete, true},
	"destroy": {aarm.EffectDelete, true}, "purge": {aarm.EffectDelete, true}, "erase": {aarm.EffectDelete, true},
	"wipe": {aarm.EffectDelete, true}, "truncate": {aarm.EffectDelete, true}, "unlink": {aarm.EffectDelete, true},
	"trash": {aarm.EffectDelete, true}, "rm": {aarm.EffectDelete, true},
	// spend
	"pay": {aarm.EffectSpend, true}, "charge": {aarm.EffectSpend, true}, "transfer": {aarm.EffectSpend, true},
	"refund": {aarm.EffectSpend, true}, "purchase": {aarm.EffectSpend, true}, "buy": {aarm.EffectSpend, true},
	"payout": {aarm.EffectSpend, true}, "withdraw": {aarm.EffectSpend, true},
	// admin
	"grant": {aarm.EffectAdmin, true}, "revoke": {aarm.EffectAdmin, true}, "chmod": {aarm.EffectAdmin, true},
	"chown": {aarm.EffectAdmin, true}, "permission": {aarm.EffectAdmin, false}, "permissions": {aarm.EffectAdmin, false},
	// execute
	"exec": {aarm.EffectExecute, true}, "execute": {aarm.EffectExecute, true}, "shell": {aarm.EffectExecute, true},
	"bash": {aarm.EffectExecute, true}, "eval": {aarm.EffectExecute, true}, "run": {aarm.EffectExecute, false},
	"spawn": {aarm.EffectExecute, false}, "command": {aarm.EffectExecute, false}, "script": {aarm.EffectExecute, false},
	// send
	"send": {aarm.EffectSend, false}, "post": {aarm.EffectSend, false}, "email": {aarm.EffectSend, false},
	"mail": {aarm.EffectSend, false}, "message": {aarm.EffectSend, false}, "notify": {aarm.EffectSend, false},
	"reply": {aarm.EffectSend, false}, "forward": {aarm.EffectSend, false}, "publish": {aarm.EffectSend, false},
	"share": {aarm.EffectSend, false}, "invite": {aarm.EffectSend, false}, "tweet": {aarm.EffectSend, false},
	"sms": {aarm.EffectSend, false}, "dm": {aarm.EffectSend, false}, "upload": {aarm.EffectSend, false},
	// write
	"create": {aarm.EffectWrite, false}, "update": {aarm.EffectWrite, false}, "write": {aarm.EffectWrite, false},
	"add": {aarm.EffectWrite, false}, "set": {aarm.EffectWrite, false}, "edit": {aarm.EffectWrite, false},
	"modify": {aarm.EffectWrite, false}, "put": {aarm.EffectWrite, false}, "insert": {aarm.EffectWrite, false},
	"save": {aarm.EffectWrite, false}, "patch": {aarm.EffectWrite, false}, "rename": {aarm.EffectWrite, false},
	"move": {aarm.EffectWrite, false}, "copy": {aarm.EffectWrite, false}, "merge": {aarm.EffectWrite, false},
	"push": {aarm.EffectWrite, false}, "commit": {aarm.EffectWrite, false}, "append": {aarm.EffectWrite, false},
	"replace": {aarm.EffectWrite, false}, "assign": {aarm.EffectWrite, false}, "close": {aarm.EffectWrite, false},
	"comment": {aarm.EffectWrite, false}, "label": {aarm.EffectWrite, false}, "upsert": {aarm.EffectWrite, false},
	// read
	"get": {aarm.EffectRead, false}, "list": {aarm.EffectRead, false}, "read": {aarm.EffectRead, false},
	"search": {aarm.EffectRead, false}, "fetch": {aarm.EffectRead, false}, "find": {aarm.EffectRead, false},
	"query": {aarm.EffectRead, false}, "describe": {aarm.EffectRead, false}, "show": {aarm.EffectRead, false},
	"view": {aarm.EffectRead, false}, "lookup": {aarm.EffectRead, false}, "browse": {aarm.EffectRead, false},
	"download": {aarm.EffectRead, false}, "retrieve": {aarm.EffectRead, false}, "count": {aarm.EffectRead, false},
	"check": {aarm.EffectRead, false}, "status": {aarm.EffectRead, false}, "info": {aarm.EffectRead, false},
	"inspect": {aarm.EffectRead, false}, "summarize": {aarm.EffectRead, false},
}

func effectRank(e aarm.Effect) int {
	for i, k := range aarm.Effects {
		if k == e {
			return i
		}
	}
	return len(aarm.Effects)
}

// mcpToolEffect guesses an MCP tool's effect from its name. A name with no
// word of the lexicon is "execute": an unknown tool may do anything, so the
// conservative default is the effect policies treat most carefully short of
// delete/spend/admin.
func mcpToolEffect(name string) aarm.Effect {
	words := splitToolWords(name)
	var primary aarm.Effect
	strongest := aarm.Effect("")
	for _, w := range words {
		lx, ok := mcpLexicon[w]
		if !ok {
			continue
		}
		if primary == "" {
			primary = lx.effect
		}
		if lx.strong && (strongest == "" || effectRank(lx.effect) > effectRank(strongest)) {
			strongest = lx.effect
		}
	}
	switch {
	case primary == "" && strongest == "":
		return aarm.EffectExecute
	case strongest != "" && (primary == "" || effectRank(strongest) > effectRank(primary)):
		return strongest
	}
	return primary
}

// splitToolWords splits "slack_postMessage", "delete-file", "GetUser" into
// lower-case words.
func splitToolWords(name string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && len(cur) > 0 && (unicode.IsLower(cur[len(cur)-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

var mcpTargetKeys = []string{"repo", "repository", "url", "uri", "path", "file_path", "filepath", "file", "filename",
	"to", "recipient", "email", "channel", "channel_id", "chat_id", "bucket", "key", "table", "database", "project", "id"}

// mcpTarget picks the action's target from common argument names.
func mcpTarget(args map[string]any) string {
	if o, ok := args["owner"].(string); ok && o != "" {
		if r, ok := args["repo"].(string); ok && r != "" {
			return o + "/" + r
		}
	}
	for _, k := range mcpTargetKeys {
		if s := valueText(args[k]); s != "" {
			return s
		}
	}
	return ""
}

var mcpEntityKeys = []struct {
	kind aarm.EntityKind
	keys []string
}{
	{aarm.EntityRecipient, []string{"to", "cc", "bcc", "recipient", "recipients", "attendees"}},
	{aarm.EntityEmail, []string{"email", "email_address", "emailAddress"}},
	{aarm.EntityURL, []string{"url", "uri", "link", "webhook_url"}},
	{aarm.EntityChannel, []string{"channel", "channel_id", "channel_name"}},
	{aarm.EntityRepo, []string{"repository", "repo"}},
	{aarm.EntityAmount, []string{"amount"}},
	{aarm.EntityAccount, []string{"account", "account_id", "iban", "destination_account"}},
	{aarm.EntityUser, []string{"user", "user_id", "username"}},
	{aarm.EntityDomain, []string{"domain"}},
}

func mcpEntities(args map[string]any) []aarm.Entity {
	values := map[string]any{}
	var rules []shapeEntity
	for _, ek := range mcpEntityKeys {
		var present []string
		for _, k := range ek.keys {
			v, ok := args[k]
			if !ok {
				continue
			}
			if ek.kind == aarm.EntityRepo && k == "repo" {
				if o, ok := args["owner"].(string); ok && o != "" {
					if r, ok := v.(string); ok {
						v = o + "/" + r
					}
				}
			}
			values[k] = v
			present = append(present, k)
		}
		if len(present) > 0 {
			rules = append(rules, shapeEntity{kind: ek.kind, params: present})
		}
	}
	return entitiesFrom(rules, values)
}
