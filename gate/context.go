package gate

import (
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/aarmproxy/aarm/rules"
)

// The context accumulator (AARM R2): per session, what the agent was asked
// to do, what it did, what data it read and how sensitive that data was,
// where each entity it uses came from, and how far it has drifted. The policy
// sees an immutable snapshot of it with every action; the snapshot's hash
// goes into the receipt.

// Context defaults.
const (
	// historyWindow bounds the prior actions kept per session in memory;
	// older ones are summarised into counts.
	historyWindow = 256
	// snapshotActions is how many recent actions a policy snapshot lists.
	snapshotActions = 32
	// DefaultDriftAlpha is the EMA weight of the newest action's drift.
	DefaultDriftAlpha = 0.3
	// sessionTaintHashes bounds one session's taint index.
	sessionTaintHashes = 200_000
	// sessionEntities bounds one session's provenance index.
	sessionEntities = 20_000
	// escalationWindow is how many recent actions count for
	// signals.classification_escalation.
	escalationWindow = 5
	// observeWait bounds how long an outbound request that carries data
	// waits for the session's forwarded responses to be observed (see
	// awaitObservations).
	observeWait = time.Second
)

// ContextOptions configures the accumulator.
type ContextOptions struct {
	// DefaultLevel is the classification of data no mechanism can classify
	// (context.default_classification; AARM R2 ships RESTRICTED).
	DefaultLevel inspect.Level
	// TrustedHosts are hosts whose responses are trusted sources of
	// entities (exact or "*.suffix").
	TrustedHosts []string
	// PublicHosts and HostLevels are classification hints per host
	// (inspect.ClassifyOptions).
	PublicHosts []string
	HostLevels  map[string]inspect.Level
	// Taint configures fingerprinting.
	Taint inspect.TaintOptions
	// DriftAlpha is the EMA weight for drift (DefaultDriftAlpha when 0).
	DriftAlpha float64
}

type priorAction struct {
	ID, Tool, Operation, Target string
	Effect                      aarm.Effect
	Verdict                     aarm.Verdict
	Time                        time.Time
}

// sessionContext is one session's accumulated context.
type sessionContext struct {
	mu      sync.Mutex
	intent  string
	history []priorAction
	// older counts actions that slid out of history, by "tool/operation".
	older      map[string]int
	olderTotal int
	level      inspect.Level
	// levelAt is the action count when level last rose.
	levelAt int
	tags    map[string]bool
	tools   []string
	taint   *inspect.TaintIndex
	prov    *inspect.ProvenanceIndex
	drift   inspect.Drift
	facts   map[string]any
	count   int
	recent  []time.Time // action times within the last minute, for velocity
	// awaiting holds the forwarded actions whose responses have not been
	// observed yet (action id → when forwarded); observed is closed and
	// replaced whenever one is.
	awaiting map[string]time.Time
	observed chan struct{}
}

// accumulator holds every session's context.
type accumulator struct {
	opts    ContextOptions
	scanner *inspect.Scanner
	intent  *inspect.IntentModel
	log     *contextLog

	mu       sync.Mutex
	sessions map[string]*sessionContext
}

func newAccumulator(opts ContextOptions, log *contextLog) *accumulator {
	if opts.DefaultLevel == inspect.LevelUnknown {
		opts.DefaultLevel = inspect.LevelRestricted
	}
	if opts.DriftAlpha <= 0 {
		opts.DriftAlpha = DefaultDriftAlpha
	}
	if opts.Taint.MaxHashes <= 0 {
		opts.Taint.MaxHashes = sessionTaintHashes
	}
	return &accumulator{
		opts: opts, log: log, intent: inspect.NewIntentModel(),
		// Credentials in Authorization-like headers are the agent's own
		// credential to the API it calls; the gate scans them only for
		// unknown destinations (see signals).
		scanner:  inspect.NewScanner(inspect.DLPOptions{}),
		sessions: map[string]*sessionContext{},
	}
}

// session returns the context of a session, creating it (with the intent
// observed as the origin of its entities) on first use.
func (a *accumulator) session(id aarm.Identity, intent string) *sessionContext {
	key := id.Session
	if key == "" {
		key = "anonymous:" + id.Agent
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	sc, ok := a.sessions[key]
	if !ok {
		sc = &sessionContext{
			older: map[string]int{}, tags: map[string]bool{}, facts: map[string]any{},
			awaiting: map[string]time.Time{}, observed: make(chan struct{}),
			taint: inspect.NewTaintIndex(a.opts.Taint),
			prov:  inspect.NewProvenanceIndex(sessionEntities),
		}
		a.sessions[key] = sc
	}
	if intent != "" && sc.intent == "" {
		sc.intent = intent
		sc.prov.ObserveText(intent, inspect.OriginIntent, "")
		a.log.append(key, "intent", map[string]any{"intent": intent})
	}
	return sc
}

// forget drops an ended session's in-memory context (its log stays).
func (a *accumulator) forget(session string) {
	a.mu.Lock()
	delete(a.sessions, session)
	a.mu.Unlock()
}

// snapshot is the policy's view of the session: a fresh map that nothing
// else holds, so the decision sees an immutable picture.
func (a *accumulator) snapshot(id aarm.Identity, sess *Session, now time.Time) map[string]any {
	intent := ""
	if sess != nil {
		intent = sess.Intent
	}
	sc := a.session(id, intent)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	ctx := map[string]any{}
	if sc.intent != "" {
		ctx["intent"] = sc.intent
	}
	if len(id.Scope) > 0 {
		ctx["scope"] = anySlice(id.Scope)
	}
	s := map[string]any{"id": id.Session, "agent": id.Agent, "human": id.Human, "service": id.Service,
		"action_count": float64(sc.count)}
	if sess != nil {
		s["age_seconds"] = now.Sub(sess.CreatedAt).Seconds()
	}
	ctx["session"] = s
	level := sc.level
	if level == inspect.LevelUnknown {
		level = inspect.LevelPublic // nothing read yet
	}
	ctx["data_classification"] = level.String()
	tags := make([]string, 0, len(sc.tags))
	for t := range sc.tags {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	ctx["data_tags"] = anySlice(tags)
	ctx["tools_used"] = anySlice(sc.tools)
	from := max(0, len(sc.history)-snapshotActions)
	prior := make([]any, 0, len(sc.history)-from)
	for _, p := range sc.history[from:] {
		prior = append(prior, map[string]any{"tool": p.Tool, "operation": p.Operation, "effect": string(p.Effect),
			"target": p.Target, "verdict": p.Verdict.String(), "time": p.Time.UTC().Format(time.RFC3339Nano)})
	}
	ctx["prior_actions"] = prior
	if older := sc.olderTotal + from; older > 0 {
		ctx["older_action_count"] = float64(older)
	}
	if len(sc.facts) > 0 {
		ctx["facts"] = deepCopy(sc.facts)
	}
	return ctx
}

// deepCopy copies the maps and slices of a JSON-like value, so that a
// snapshot shares nothing mutable with the accumulator (facts arrive as
// nested JSON from the admin API).
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = deepCopy(e)
		}
		return s
	case []string:
		return slices.Clone(t)
	default:
		return v
	}
}

// signalsFor computes the risk signals of one action (the signals contract
// of rules.Input): DLP over every field of the request, taint against what
// the session read, provenance of the destination entities, intent
// alignment and drift, scope expansion, classification escalation, velocity.
func (a *accumulator) signalsFor(id aarm.Identity, act aarm.Action, fields []inspect.Field, text string, now time.Time) (map[string]any, []inspect.Finding) {
	return a.signalsWith(id, act, a.scanContent(fields, text), now)
}

// content is a request's content scanned once: every action of a batch is
// judged against the same findings and fingerprint, so a request pays for
// one DLP scan and one fingerprint however many actions it carries.
type content struct {
	findings []inspect.Finding // before the credential-header exemption, which depends on the action
	fp       inspect.Fingerprint
}

func (a *accumulator) scanContent(fields []inspect.Field, text string) content {
	return content{findings: a.scanner.Scan(fields), fp: inspect.FingerprintText(text, a.opts.Taint)}
}

// signalsWith computes one action's signals from scanned content.
func (a *accumulator) signalsWith(id aarm.Identity, act aarm.Action, c content, now time.Time) (map[string]any, []inspect.Finding) {
	sc := a.session(id, "")
	// Anything that could carry data out waits for the data just read to
	// be observed: non-reads, and reads to unknown hosts (a GET's query can
	// carry it as well as a POST's body).
	if act.Effect != aarm.EffectRead || act.Tool == "http" {
		sc.awaitObservations(now)
	}
	findings := exemptOwnCredentials(act, c.findings)
	sig := map[string]any{"dlp": inspect.DLPSignal(findings)}

	sig["taint"] = sc.taint.Match(c.fp, flowKey(act.Tool, act.Destination.Host, act.Target)).Signal()

	dest := destinationEntities(act)
	sig["destination_provenance"] = sc.prov.Judge(dest)

	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.intent != "" {
		al := a.intent.Align(sc.intent, id.Scope, descriptor(act, dest))
		sig["alignment"] = al.Score
		sig["drift"] = sc.drift.Update(al.Score, a.opts.DriftAlpha).Signal()
		sig["scope_expansion"] = al.ScopeExpansion
	} else {
		sig["scope_expansion"] = false
	}
	sig["classification_escalation"] = sc.level >= inspect.LevelConfidential && sc.count-sc.levelAt <= escalationWindow
	n := 0
	for _, t := range sc.recent {
		if now.Sub(t) <= time.Minute {
			n++
		}
	}
	sig["velocity"] = map[string]any{"per_minute": float64(n + 1)}
	return sig, findings
}

// awaitObservations waits, at most observeWait, until the responses this
// session was forwarded have been observed. The proxy hands the last byte
// of a response to the agent before the gate observes it, so an agent that
// answers at once (read, then immediately send what it read) would
// otherwise be judged against context that does not hold the data it is
// sending yet. Reads do not wait (they carry no data out), and a response
// that is never observed (upstream error, a stream that outlives the wait)
// stops counting after observeWait.
func (sc *sessionContext) awaitObservations(now time.Time) {
	deadline := time.Now().Add(observeWait)
	for {
		sc.mu.Lock()
		pending := false
		for id, at := range sc.awaiting {
			if now.Sub(at) > observeWait {
				delete(sc.awaiting, id)
				continue
			}
			pending = true
		}
		ch := sc.observed
		sc.mu.Unlock()
		left := time.Until(deadline)
		if !pending || left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
			t.Stop()
		case <-t.C:
			return
		}
	}
}

// markObserved ends the wait for an observed action's response (a batch
// request's actions share the id before the ".N" suffix). Call with sc.mu
// held.
func (sc *sessionContext) markObserved(actionID string) {
	base, _, _ := strings.Cut(actionID, ".")
	found := false
	for id := range sc.awaiting {
		if b, _, _ := strings.Cut(id, "."); b == base {
			delete(sc.awaiting, id)
			found = true
		}
	}
	if found {
		close(sc.observed)
		sc.observed = make(chan struct{})
	}
}

// credentialHeaders carry the agent's own credential to the API it calls.
var credentialHeaders = []string{"header.authorization", "header.cookie", "header.x-api-key", "header.api-key", "header.x-auth-token"}

// credentialHosts says where each recognisable credential type belongs: a
// GitHub token in the Authorization header to api.github.com is the agent's
// credential; the same token in a header to anything else is exfiltration.
var credentialHosts = map[string][]string{
	"github_token": {"github.com"}, "gitlab_token": {"gitlab.com"}, "slack_token": {"slack.com"},
	"openai_api_key": {"openai.com"}, "anthropic_api_key": {"anthropic.com"}, "stripe_key": {"stripe.com"},
	"aws_access_key_id": {"amazonaws.com"}, "aws_secret_access_key": {"amazonaws.com"},
	"google_api_key": {"googleapis.com"}, "gcp_service_account": {"googleapis.com"},
	"sendgrid_api_key": {"sendgrid.com"}, "twilio_api_key": {"twilio.com"}, "twilio_auth_token": {"twilio.com"},
	"npm_token": {"npmjs.org", "npmjs.com"}, "pypi_token": {"pypi.org"},
}

// exfilTools are catalogued destinations that show whoever owns them every
// request header (webhook bins, paste and file-drop sites): nothing in a
// header to them is the agent's own credential.
var exfilTools = map[string]bool{
	"slack-webhook": true, "discord-webhook": true, "teams-webhook": true, "pastebin": true, "paste-ee": true,
	"hastebin": true, "toptal-hastebin": true, "transfer-sh": true, "file-io": true, "0x0": true, "catbox": true,
	"webhook-site": true, "pipedream": true,
}

// exemptOwnCredentials drops from a request's DLP findings those that are the
// agent's own credential for act's destination. A finding in a credential header
// is dropped only when it is the agent's credential to this destination: a
// recognisable credential whose service is the destination host, or an
// unrecognisable one (a JWT, an opaque key) sent to an API a rule pack knows
// and that is not a webhook bin or paste site. Everything else counts.
func exemptOwnCredentials(act aarm.Action, all []inspect.Finding) []inspect.Finding {
	kept := all[:0:0]
	for _, f := range all {
		if !(inCredentialHeader(f.Location) && ownCredential(f.Type, act)) {
			kept = append(kept, f)
		}
	}
	return kept
}

func inCredentialHeader(loc string) bool {
	base, _, _ := strings.Cut(strings.ToLower(loc), "|")
	return slices.Contains(credentialHeaders, base)
}

func ownCredential(typ string, act aarm.Action) bool {
	host := strings.TrimSuffix(strings.ToLower(act.Destination.Host), ".")
	if domains, ok := credentialHosts[typ]; ok {
		for _, d := range domains {
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
		return false
	}
	return act.Tool != "http" && !exfilTools[act.Tool] && !isUnknownLLMHost(act)
}

// isUnknownLLMHost reports an LLM-shaped request to a host that is not a
// known model provider: it is judged as an unknown destination.
func isUnknownLLMHost(act aarm.Action) bool {
	known, ok := act.Parameters["provider_known"].(bool)
	return act.Tool == "llm" && (!ok || !known)
}

// destinationEntities are the entities an action sends to: its recipient,
// email, URL, account and channel entities, plus the destination host for
// requests no pack knows (posting to an unknown host sends to that host).
func destinationEntities(act aarm.Action) []inspect.EntityRef {
	var out []inspect.EntityRef
	for _, e := range act.Entities {
		switch e.Kind {
		case aarm.EntityRecipient, aarm.EntityEmail, aarm.EntityURL, aarm.EntityAccount, aarm.EntityDomain, aarm.EntityChannel, aarm.EntityUser:
			kind := e.Kind
			if kind == aarm.EntityRecipient {
				kind = aarm.EntityEmail
				if !strings.Contains(e.Value, "@") {
					kind = aarm.EntityUser
				}
			}
			out = append(out, inspect.NormalizeEntity(inspect.EntityRef{Kind: kind, Value: e.Value}))
		}
	}
	if act.Tool == "http" && act.Effect != aarm.EffectRead && act.Destination.Host != "" {
		out = append(out, inspect.NormalizeEntity(inspect.EntityRef{Kind: aarm.EntityDomain, Value: act.Destination.Host}))
	}
	return out
}

// descriptor is what intent alignment compares with the intent. A target
// inside a repository ("owner/repo:path", "owner/repo:heads/branch") is
// judged as the repository it lies in: the intent and the declared scope
// name repositories, and a file or branch of a named repository is not an
// expansion of scope.
func descriptor(act aarm.Action, dest []inspect.EntityRef) inspect.ActionDescriptor {
	params := map[string]string{}
	for k := range act.Parameters {
		params[k] = ""
	}
	return inspect.ActionDescriptor{Tool: act.Tool, Operation: act.Operation, Effect: act.Effect, Target: alignTarget(act.Target), Params: params, Entities: dest}
}

// alignTarget cuts "owner/repo:rest" to "owner/repo".
func alignTarget(target string) string {
	repo, _, found := strings.Cut(target, ":")
	if !found {
		return target
	}
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") || strings.ContainsAny(repo, " @") {
		return target
	}
	return repo
}

// record appends a decided action to the session's context.
func (a *accumulator) record(id aarm.Identity, acts []aarm.Action, signals []map[string]any, d aarm.Decision, now time.Time) {
	sc := a.session(id, "")
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for i, act := range acts {
		if d.Verdict.Forwards() && act.ID != "" {
			sc.awaiting[act.ID] = now
		}
		sc.count++
		sc.history = append(sc.history, priorAction{ID: act.ID, Tool: act.Tool, Operation: act.Operation, Target: act.Target, Effect: act.Effect, Verdict: d.Verdict, Time: now})
		if !slices.Contains(sc.tools, act.Tool) {
			sc.tools = append(sc.tools, act.Tool)
		}
		if al, ok := signals[i]["alignment"].(float64); ok {
			sc.drift = sc.drift.Update(al, a.opts.DriftAlpha)
		}
		// The agent's own use of an entity is recorded after judging it.
		for _, e := range destinationEntities(act) {
			sc.prov.Observe(e, inspect.OriginAgent, act.ID)
		}
		a.log.append(id.Session, "action", map[string]any{
			"action_id": act.ID, "tool": act.Tool, "operation": act.Operation, "target": act.Target,
			"effect": string(act.Effect), "verdict": d.Verdict.String(), "rule": d.Rule,
		})
	}
	if over := len(sc.history) - historyWindow; over > 0 {
		for _, p := range sc.history[:over] {
			sc.older[p.Tool+"/"+p.Operation]++
		}
		sc.olderTotal += over
		sc.history = append(sc.history[:0:0], sc.history[over:]...)
	}
	sc.recent = append(sc.recent, now)
	for len(sc.recent) > 0 && now.Sub(sc.recent[0]) > time.Minute {
		sc.recent = sc.recent[1:]
	}
}

// observeData records data the agent read (a response, or tool results it
// hands its model): classification, fingerprints and entity provenance.
func (a *accumulator) observeData(id aarm.Identity, actionID, host string, fields []inspect.Field, text string, classified bool) inspect.DataClass {
	sc := a.session(id, "")
	var class inspect.DataClass
	if classified {
		class = inspect.Classify(host, fields, a.scanner.Scan(fields), inspect.ClassifyOptions{
			Default: a.opts.DefaultLevel, PublicHosts: a.opts.PublicHosts, HostLevels: a.opts.HostLevels})
	} else {
		// AARM R2: data no mechanism could read counts at the default level.
		class = inspect.DataClass{Level: a.opts.DefaultLevel, Reasons: []string{"response could not be decoded"}}
	}
	// Text the agent decodes before reading it (a Gmail message body is
	// base64url) is data it has read too: taint and provenance see it.
	text += decodedFieldText(fields)
	if strings.TrimSpace(text) != "" {
		sc.taint.Add(inspect.TaintSource{ActionID: actionID, Host: sc.sourceKey(actionID, host), Level: class.Level, Tags: class.Tags}, inspect.FingerprintText(text, a.opts.Taint))
		origin := inspect.OriginToolOutput
		if _, ok := matchHost(a.opts.TrustedHosts, host); ok {
			origin = inspect.OriginTrusted
		}
		sc.prov.ObserveText(text, origin, actionID)
	}
	sc.mu.Lock()
	if class.Level > sc.level {
		sc.level = class.Level
		sc.levelAt = sc.count
	}
	for _, t := range class.Tags {
		sc.tags[t] = true
	}
	sc.markObserved(actionID)
	sc.mu.Unlock()
	a.log.append(id.Session, "data", map[string]any{"action_id": actionID, "host": host, "level": class.Level.String(), "tags": class.Tags, "classified": class.Classified})
	return class
}

// minDecodedField is the shortest field value tried as base64.
const minDecodedField = 16

// decodedFieldText returns, one per line, the text of every field whose
// whole value is base64 or base64url (padded or not) of printable UTF-8 —
// the shape of Gmail's payload.body.data and raw, and of GitHub's
// contents.content — so that what the agent decodes and reads feeds taint
// and provenance like plain text does.
func decodedFieldText(fields []inspect.Field) string {
	var sb strings.Builder
	for _, f := range fields {
		if strings.HasPrefix(f.Location, "header.") {
			continue
		}
		if t, ok := decodeBase64Text(f.Value); ok {
			sb.WriteByte('\n')
			sb.WriteString(t)
		}
	}
	return sb.String()
}

func decodeBase64Text(v string) (string, bool) {
	// GitHub wraps base64 content at 60 columns.
	v = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, strings.TrimSpace(v))
	if len(v) < minDecodedField {
		return "", false
	}
	urlSafe := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
		case c == '-' || c == '_':
			urlSafe = true
		default:
			return "", false
		}
	}
	enc := base64.StdEncoding
	if urlSafe {
		enc = base64.URLEncoding
	}
	b, err := enc.WithPadding(base64.NoPadding).DecodeString(strings.TrimRight(v, "="))
	if err != nil || !utf8.Valid(b) {
		return "", false
	}
	printable := 0
	for _, r := range string(b) {
		if r == '\n' || r == '\r' || r == '\t' || r >= ' ' && r != 0x7f {
			printable++
		}
	}
	if printable < utf8.RuneCount(b)*95/100 {
		return "", false
	}
	return string(b), true
}

// flowKey is where data lives or goes, for taint: the host, except on
// hosts that serve many owners, where sending data back to the host it came
// from may still move it to someone else. On GitHub the key is the host and
// the owner of the repository ("api.github.com/acme"): copying between the
// owner's repositories is not a flow, copying acme's private file into a
// gist or another owner's repository is.
func flowKey(tool, host, target string) string {
	if tool != "github" {
		return host
	}
	owner := target
	if i := strings.IndexAny(owner, "/:#"); i >= 0 {
		owner = owner[:i]
	}
	return host + "/" + strings.ToLower(owner)
}

// sourceKey is the flow key of the data an action read: its host and, from
// the session's history, its tool and target. Call with sc.mu not held.
func (sc *sessionContext) sourceKey(actionID, host string) string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for i := len(sc.history) - 1; i >= 0; i-- {
		if p := sc.history[i]; p.ID == actionID {
			return flowKey(p.Tool, host, p.Target)
		}
	}
	return host
}

// addFacts merges facts supplied for a session.
func (a *accumulator) addFacts(id aarm.Identity, facts map[string]any, source string) {
	sc := a.session(id, "")
	sc.mu.Lock()
	for k, v := range facts {
		sc.facts[k] = deepCopy(v)
	}
	sc.mu.Unlock()
	a.log.append(id.Session, "facts", map[string]any{"facts": facts, "source": source})
}

// View is a session's accumulated context for people (the dashboard and
// GET /api/v1/sessions/{id}).
type View struct {
	Intent             string         `json:"intent,omitempty"`
	DataClassification string         `json:"data_classification"`
	DataTags           []string       `json:"data_tags"`
	ToolsUsed          []string       `json:"tools_used"`
	ActionCount        int            `json:"action_count"`
	Drift              map[string]any `json:"drift"`
	Facts              map[string]any `json:"facts,omitempty"`
	RecentActions      []any          `json:"recent_actions"`
}

// ContextView returns a session's accumulated context.
func (g *Gate) ContextView(session string) (*View, bool) {
	sess, ok := g.opts.Sessions.Get(session)
	if !ok {
		return nil, false
	}
	snap := g.ctx.snapshot(sess.Identity(), sess, g.now())
	sc := g.ctx.session(sess.Identity(), "")
	sc.mu.Lock()
	drift := sc.drift.Signal()
	sc.mu.Unlock()
	v := &View{Intent: sess.Intent, DataClassification: snap["data_classification"].(string), Drift: drift,
		RecentActions: snap["prior_actions"].([]any)}
	for _, t := range snap["data_tags"].([]any) {
		v.DataTags = append(v.DataTags, t.(string))
	}
	for _, t := range snap["tools_used"].([]any) {
		v.ToolsUsed = append(v.ToolsUsed, t.(string))
	}
	v.ActionCount = int(snap["session"].(map[string]any)["action_count"].(float64))
	if f, ok := snap["facts"].(map[string]any); ok {
		v.Facts = f
	}
	return v, true
}

// llmExchange feeds an LLM provider request into the context: the first user
// message becomes the intent when the session has none, and tool results the
// agent hands its model count as data it has read.
func (g *Gate) llmExchange(id aarm.Identity, act aarm.Action, x *rules.LLMExchange) {
	if x == nil {
		return
	}
	actionID, host := act.ID, act.Destination.Host
	// Only a known model provider may set the intent: any host can speak
	// the OpenAI API, and an agent must not write its own intent.
	if x.UserText != "" && id.Session != "" && !isUnknownLLMHost(act) {
		if sess, ok := g.opts.Sessions.Get(id.Session); ok && sess.Intent == "" {
			if _, err := g.opts.Sessions.SetIntent(id.Session, x.UserText); err == nil {
				g.ctx.session(id, x.UserText)
			}
		}
	}
	for _, tr := range x.ToolResults {
		g.ctx.observeData(id, actionID, host, []inspect.Field{{Location: "llm.tool_result", Value: tr}}, tr, true)
	}
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
