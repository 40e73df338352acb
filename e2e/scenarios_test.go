package e2e

// TestScenarios is issue 6's proof: a corpus of benign tasks and attacks
// (e2e/scenarios/*.yaml), each a sequence of real-shaped API calls with the
// answers local stand-ins for GitHub, Slack, Gmail, Stripe and arbitrary web
// hosts give back, driven through the real aarm binary with the shipped
// default policy. Every step states the verdict the gate must reach; the
// runner prints a table and the totals: attack calls blocked, benign calls
// allowed.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"
)

// Marker headers route a stand-in's scripted answer to the step that asked
// for it. They carry nothing the gate judges.
const (
	scenarioHeader = "X-Scenario"
	stepHeader     = "X-Scenario-Step"
)

// scenario is one e2e/scenarios/*.yaml file.
type scenario struct {
	Name        string `yaml:"name"`
	Kind        string `yaml:"kind"` // benign or attack
	Description string `yaml:"description"`
	Session     struct {
		User   string   `yaml:"user"`
		Agent  string   `yaml:"agent"`
		Intent string   `yaml:"intent"`
		Scope  []string `yaml:"scope"`
	} `yaml:"session"`
	// ContextFacts are added to the session before the first step
	// (POST /api/v1/sessions/{id}/context).
	ContextFacts map[string]any `yaml:"context_facts"`
	Steps        []scenarioStep `yaml:"steps"`

	file string
}

// scenarioStep is one call: the request the agent sends, what the stand-in
// answers when the call gets through, and the verdict the gate must reach.
type scenarioStep struct {
	Name    string `yaml:"name"`
	Request struct {
		Method  string            `yaml:"method"`
		URL     string            `yaml:"url"`
		Headers map[string]string `yaml:"headers"`
		Body    yaml.Node         `yaml:"body"`
	} `yaml:"request"`
	Response struct {
		Status  int               `yaml:"status"`
		Headers map[string]string `yaml:"headers"`
		Body    yaml.Node         `yaml:"body"`
	} `yaml:"response"`
	Expect string `yaml:"expect"`
	// KnownGap marks an attack call the gate should block but does not
	// today: Expect records the current behaviour, the text says what
	// must change (outside the gate's context checks). The call counts as
	// an attack call that was not blocked.
	KnownGap string `yaml:"known_gap"`

	reqBody, respBody []byte
}

var scenarioFileName = regexp.MustCompile(`^\d\d-[a-z0-9-]+\.yaml$`)

var verdictSpellings = []string{"ALLOW", "DENY", "MODIFY", "STEP_UP", "DEFER"}

// loadScenarios reads and validates every scenario file.
func loadScenarios(t testing.TB, dir string) []*scenario {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []*scenario
	names := map[string]string{}
	for _, f := range files {
		sc, err := parseScenario(f)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := names[sc.Name]; dup {
			t.Fatalf("%s: scenario name %q is also used by %s", f, sc.Name, prev)
		}
		names[sc.Name] = f
		out = append(out, sc)
	}
	return out
}

func parseScenario(path string) (*scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(path)
	if !scenarioFileName.MatchString(base) {
		return nil, fmt.Errorf("%s: file name must be NN-name.yaml (lower case, digits, dashes)", path)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	sc := &scenario{file: base}
	if err := dec.Decode(sc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case sc.Name == "":
		return nil, fmt.Errorf("%s: name is required", path)
	case sc.Kind != "benign" && sc.Kind != "attack":
		return nil, fmt.Errorf("%s: kind must be benign or attack, got %q", path, sc.Kind)
	case strings.TrimSpace(sc.Description) == "":
		return nil, fmt.Errorf("%s: description is required (the story of the scenario)", path)
	case sc.Session.Intent == "":
		return nil, fmt.Errorf("%s: session.intent is required", path)
	case len(sc.Steps) == 0:
		return nil, fmt.Errorf("%s: steps: at least one step is required", path)
	}
	blocking := 0
	for i := range sc.Steps {
		st := &sc.Steps[i]
		where := fmt.Sprintf("%s: steps[%d]", path, i)
		if st.Request.Method == "" || !strings.HasPrefix(st.Request.URL, "https://") {
			return nil, fmt.Errorf("%s.request: method and an https:// url are required", where)
		}
		if !slices.Contains(verdictSpellings, st.Expect) {
			return nil, fmt.Errorf("%s.expect: want one of %v, got %q", where, verdictSpellings, st.Expect)
		}
		if isBlocking(st.Expect) || st.KnownGap != "" {
			blocking++
		}
		if st.KnownGap != "" && (sc.Kind != "attack" || isBlocking(st.Expect)) {
			return nil, fmt.Errorf("%s.known_gap: only for an attack call the gate lets through today", where)
		}
		if st.reqBody, err = nodeBody(&st.Request.Body); err != nil {
			return nil, fmt.Errorf("%s.request.body: %w", where, err)
		}
		if st.respBody, err = nodeBody(&st.Response.Body); err != nil {
			return nil, fmt.Errorf("%s.response.body: %w", where, err)
		}
		if st.Response.Status == 0 {
			st.Response.Status = http.StatusOK
		}
	}
	if sc.Kind == "attack" && blocking == 0 {
		return nil, fmt.Errorf("%s: an attack scenario needs at least one step expected DENY, STEP_UP or DEFER (or a known_gap)", path)
	}
	return sc, nil
}

// nodeBody renders a body given as a string as is, and any other YAML value
// (mapping, sequence) as JSON. A string tagged !base64url anywhere in it is
// sent base64url-encoded, as Gmail carries messages ("raw", "body.data"):
// the file stays readable, the wire stays real.
func nodeBody(n *yaml.Node) ([]byte, error) {
	if n.Kind == 0 {
		return nil, nil
	}
	encodeTagged(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return []byte(n.Value), nil
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, n); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSON renders a YAML node as JSON keeping the order of mapping keys,
// as real APIs send them (taint must match records as they were served).
func writeJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		return writeJSON(buf, n.Content[0])
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			buf.Write(k)
			buf.WriteByte(':')
			if err := writeJSON(buf, n.Content[i+1]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, c); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.Write(b)
	default:
		return fmt.Errorf("line %d: aliases are not supported in bodies", n.Line)
	}
	return nil
}

func encodeTagged(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!base64url" {
		n.Value, n.Tag, n.Style = base64.RawURLEncoding.EncodeToString([]byte(n.Value)), "!!str", 0
	}
	for _, c := range n.Content {
		encodeTagged(c)
	}
}

func isBlocking(v string) bool { return v == "DENY" || v == "STEP_UP" || v == "DEFER" }

// standIn is one local TLS server answering for every stand-in host; it
// returns each step's scripted response, found by the marker headers.
type standIn struct {
	srv *httptest.Server
	mu  sync.Mutex
	// hits counts the requests that reached the stand-in, by scenario/step.
	hits      map[string]int
	scenarios map[string]*scenario
}

func newStandIn(t testing.TB, ca *upstreamCA, hosts []string, scs []*scenario) *standIn {
	t.Helper()
	s := &standIn{hits: map[string]int{}, scenarios: map[string]*scenario{}}
	for _, sc := range scs {
		s.scenarios[sc.Name] = sc
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, hosts...)}, NextProtos: []string{"h2", "http/1.1"}}
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *standIn) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	name, idx := r.Header.Get(scenarioHeader), r.Header.Get(stepHeader)
	s.mu.Lock()
	s.hits[name+"/"+idx]++
	sc := s.scenarios[name]
	s.mu.Unlock()
	var i int
	if _, err := fmt.Sscan(idx, &i); sc == nil || err != nil || i < 0 || i >= len(sc.Steps) {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	st := &sc.Steps[i]
	for k, v := range st.Response.Headers {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(st.Response.Status)
	_, _ = w.Write(st.respBody)
}

func (s *standIn) hitCount(name string, step int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[fmt.Sprintf("%s/%d", name, step)]
}

// scenarioPolicy is the shipped default policy with the organisation's own
// domain set, as its comment tells a deployment to do: mail to colleagues at
// acme.com is internal, anything else is external.
func scenarioPolicy(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "rules", "defaultpolicy", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := string(b)
	if regexp.MustCompile(`(?m)^\s+internal_domains:`).MatchString(p) {
		t.Fatal("the default policy now sets internal_domains itself; revisit scenarioPolicy")
	}
	out, n := regexp.MustCompile(`(?m)^policy:\n`).ReplaceAllString(p, "policy:\n  internal_domains: [acme.com]\n"), strings.Count(p, "\npolicy:\n")
	if n != 1 {
		t.Fatalf("default policy: want one top-level policy: block, found %d", n)
	}
	return out
}

// scenarioResult is one step's row in the table.
type scenarioResult struct {
	scenario, kind, file string
	step                 int
	name                 string
	expect, got, rule    string
	gap                  bool
	reached              bool
	note                 string
	// signals are the risk signals of a held step (from the hold), shown
	// when a step does not match.
	signals map[string]any
}

func (r scenarioResult) ok() bool { return r.expect == r.got && r.note == "" }

// decisionTail indexes the decision log lines by receipt id as they arrive.
type decisionTail struct {
	inst   *instance
	mu     sync.Mutex
	offset int
	byRcpt map[string]map[string]any
}

func (d *decisionTail) lookup(receipt string) (map[string]any, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.byRcpt[receipt]; ok {
		return m, true
	}
	logs := d.inst.logs.String()
	rest := logs[d.offset:]
	end := strings.LastIndexByte(rest, '\n')
	if end < 0 {
		return nil, false
	}
	sc := bufio.NewScanner(strings.NewReader(rest[:end]))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "decision" {
			if id, _ := m["receipt"].(string); id != "" {
				d.byRcpt[id] = m
			}
		}
	}
	d.offset += end + 1
	m, ok := d.byRcpt[receipt]
	return m, ok
}

// pendingHold is the part of a gate.Hold the runner reads.
type pendingHold struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Action struct {
		Operation string `json:"operation"`
		Identity  struct {
			Session string `json:"session"`
		} `json:"identity"`
	} `json:"action"`
	Decision struct {
		Rule string `json:"rule"`
	} `json:"decision"`
	Signals map[string]any `json:"signals"`
}

func TestScenarios(t *testing.T) {
	scs := loadScenarios(t, "scenarios")
	if len(scs) < 40 {
		t.Fatalf("scenario corpus: got %d scenarios, want at least 40", len(scs))
	}
	hostSet := map[string]bool{}
	for _, sc := range scs {
		for _, st := range sc.Steps {
			req, err := http.NewRequest(st.Request.Method, st.Request.URL, nil)
			if err != nil {
				t.Fatalf("%s: %v", sc.file, err)
			}
			hostSet[req.URL.Hostname()] = true
		}
	}
	hosts := make([]string, 0, len(hostSet))
	for h := range hostSet {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)

	ca := newUpstreamCA(t)
	si := newStandIn(t, ca, hosts, scs)
	ups := make([]*upstream, 0, len(hosts))
	for _, h := range hosts {
		ups = append(ups, &upstream{host: h, srv: si.srv})
	}
	inst := startAarm(t, ca, ups, "", scenarioPolicy(t))
	tail := &decisionTail{inst: inst, byRcpt: map[string]map[string]any{}}

	var mu sync.Mutex
	var results []scenarioResult
	t.Run("corpus", func(t *testing.T) {
		for _, sc := range scs {
			t.Run(sc.Name, func(t *testing.T) {
				t.Parallel()
				rs := runScenario(t, inst, si, tail, sc)
				mu.Lock()
				results = append(results, rs...)
				mu.Unlock()
				for _, r := range rs {
					if !r.ok() {
						sig, _ := json.Marshal(r.signals)
						t.Errorf("%s step %d (%s): got %s (rule %q)%s, want %s; hold signals %s", sc.file, r.step, r.name, r.got, r.rule, r.note, r.expect, sig)
					}
				}
			})
		}
	})
	sort.Slice(results, func(i, j int) bool {
		if results[i].file != results[j].file {
			return results[i].file < results[j].file
		}
		return results[i].step < results[j].step
	})
	table := scenarioTable(results)
	t.Log("\n" + table)
	if testing.Verbose() {
		fmt.Println(table)
	}
}

// runScenario drives one scenario in its own session, step by step.
func runScenario(t *testing.T, inst *instance, si *standIn, tail *decisionTail, sc *scenario) []scenarioResult {
	agent := sc.Session.Agent
	if agent == "" {
		agent = "scenario-bot"
	}
	user := sc.Session.User
	if user == "" {
		user = "alice"
	}
	sess := inst.startSession(t, user, agent, sc.Session.Intent, sc.Session.Scope...)
	if len(sc.ContextFacts) > 0 {
		if code := inst.api(t, http.MethodPost, "/api/v1/sessions/"+sess.ID+"/context", map[string]any{"facts": sc.ContextFacts, "source": "scenario"}, nil); code != http.StatusOK {
			t.Fatalf("add context facts: status %d", code)
		}
	}
	client := inst.goClient(t, sess.Token, false)
	var out []scenarioResult
	for i := range sc.Steps {
		st := &sc.Steps[i]
		r := scenarioResult{scenario: sc.Name, kind: sc.Kind, file: sc.file, step: i + 1, name: st.Name, expect: st.Expect, gap: st.KnownGap != ""}
		if r.name == "" {
			r.name = st.Request.Method + " " + st.Request.URL
		}
		r.got, r.rule, r.note, r.signals = runStep(t, inst, client, tail, sess.ID, sc.Name, i, st)
		r.reached = si.hitCount(sc.Name, i) > 0
		// The verdict must show at the tool: what was blocked never
		// reached it, what was allowed did.
		if forwards := r.got == "ALLOW" || r.got == "MODIFY"; forwards != r.reached && r.note == "" {
			r.note = fmt.Sprintf(" (stand-in reached=%v)", r.reached)
		}
		out = append(out, r)
	}
	return out
}

// runStep sends one request and returns the verdict the gate reached: the
// source of the hold for STEP_UP and DEFER (which the runner then denies so
// the call ends), otherwise the verdict of the decision log line.
func runStep(t *testing.T, inst *instance, client *http.Client, tail *decisionTail, sessionID, name string, idx int, st *scenarioStep) (got, rule, note string, signals map[string]any) {
	var body io.Reader
	if st.reqBody != nil {
		body = bytes.NewReader(st.reqBody)
	}
	req, err := http.NewRequestWithContext(t.Context(), st.Request.Method, st.Request.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range st.Request.Headers {
		req.Header.Set(k, v)
	}
	if st.reqBody != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(scenarioHeader, name)
	req.Header.Set(stepHeader, fmt.Sprint(idx))

	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{resp: resp, body: b}
	}()

	held := ""
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case a := <-done:
			if a.err != nil {
				return "ERROR", "", " (" + a.err.Error() + ")", nil
			}
			rcpt := a.resp.Header.Get("X-AARM-Receipt")
			var line map[string]any
			for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
				if m, ok := tail.lookup(rcpt); ok {
					line = m
					break
				}
			}
			if line == nil {
				return fmt.Sprintf("HTTP %d", a.resp.StatusCode), "", " (no decision line for receipt " + rcpt + ")", signals
			}
			verdict, _ := line["verdict"].(string)
			rule, _ = line["rule"].(string)
			if held != "" {
				if verdict != "DENY" || a.resp.StatusCode != http.StatusForbidden {
					return held, rule, fmt.Sprintf(" (denied hold ended %s/%d)", verdict, a.resp.StatusCode), signals
				}
				return held, rule, "", signals
			}
			switch {
			case verdict == "DENY" && a.resp.StatusCode != http.StatusForbidden:
				note = fmt.Sprintf(" (DENY answered %d)", a.resp.StatusCode)
			case (verdict == "ALLOW" || verdict == "MODIFY") && a.resp.StatusCode != st.Response.Status:
				note = fmt.Sprintf(" (forwarded but answered %d %.200s)", a.resp.StatusCode, a.body)
			}
			return verdict, rule, note, nil
		case <-tick.C:
			if held != "" {
				continue
			}
			// The list is {"holds": [...]}; older builds said "approvals".
			var list struct {
				Holds     []pendingHold `json:"holds"`
				Approvals []pendingHold `json:"approvals"`
			}
			if code := inst.api(t, http.MethodGet, "/api/v1/approvals?state=pending", nil, &list); code != http.StatusOK {
				t.Errorf("GET /api/v1/approvals: status %d", code)
			}
			for _, h := range append(list.Approvals, list.Holds...) {
				if h.Action.Identity.Session != sessionID {
					continue
				}
				switch h.Source {
				case "step_up":
					held = "STEP_UP"
				case "defer":
					held = "DEFER"
				default:
					held = "HOLD(" + h.Source + ")"
				}
				signals = h.Signals
				code := inst.api(t, http.MethodPost, "/api/v1/approvals/"+h.ID+"/deny", map[string]string{"reason": "scenario"}, nil)
				if code != http.StatusOK {
					t.Errorf("deny hold %s: status %d", h.ID, code)
				}
				break
			}
		case <-deadline:
			return "TIMEOUT", "", " (no answer in 60s)", signals
		}
	}
}

// scenarioTable renders the results and the totals.
func scenarioTable(rs []scenarioResult) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tkind\tstep\tcall\texpected\tgot\trule\t")
	var attackN, attackBlocked, benignN, benignAllowed, otherN, otherOK, mismatches int
	for _, r := range rs {
		mark := "✓"
		if !r.ok() {
			mark = "✗"
			mismatches++
		} else if r.gap {
			mark = "✓ (known gap: not blocked)"
		}
		call := r.name
		if len(call) > 60 {
			call = call[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", strings.TrimSuffix(r.file, ".yaml"), r.kind, r.step, call, r.expect, r.got+r.note, r.rule, mark)
		switch {
		case r.kind == "attack" && (isBlocking(r.expect) || r.gap):
			attackN++
			if isBlocking(r.got) && r.note == "" {
				attackBlocked++
			}
		case r.kind == "benign" && !isBlocking(r.expect):
			benignN++
			if (r.got == "ALLOW" || r.got == "MODIFY") && r.note == "" {
				benignAllowed++
			}
		default:
			otherN++
			if r.ok() {
				otherOK++
			}
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "\nattack calls blocked (DENY/STEP_UP/DEFER): %d/%d\n", attackBlocked, attackN)
	fmt.Fprintf(&b, "benign calls allowed (ALLOW/MODIFY):       %d/%d\n", benignAllowed, benignN)
	fmt.Fprintf(&b, "other calls as expected (reads inside attacks, confirmations inside benign tasks): %d/%d\n", otherOK, otherN)
	fmt.Fprintf(&b, "steps matching their expectation: %d/%d (mismatches: %d)\n", len(rs)-mismatches, len(rs), mismatches)
	return b.String()
}
