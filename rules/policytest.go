package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aarmproxy/aarm"
	"go.yaml.in/yaml/v3"
)

// PolicyTestDefault is the `policy:` value of a test file that names the
// embedded default policy instead of a file.
const PolicyTestDefault = "@default"

// PolicyTestNow is the decision time of a test case that gives no `now`.
var PolicyTestNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// PolicyTestFile is the YAML shape of an `aarm policy test` file.
type PolicyTestFile struct {
	// Policy is a path relative to the test file, "@default", or an inline policy.
	Policy yaml.Node        `yaml:"policy"`
	Cases  []PolicyTestCase `yaml:"cases"`
}

// PolicyTestCase is one case: an action in a context, and the decision wanted.
type PolicyTestCase struct {
	Name     string         `yaml:"name"`
	Action   map[string]any `yaml:"action"`
	Context  map[string]any `yaml:"context"`
	Signals  map[string]any `yaml:"signals"`
	Identity map[string]any `yaml:"identity"`
	Now      string         `yaml:"now"`
	// Rates gives earlier action counts per rule id for rate constraints.
	Rates map[string]int `yaml:"rates"`
	// Redactions, Request and WantRequest test MODIFY edits: Request is
	// edited by the decision's modifications and compared with WantRequest.
	Request     *PolicyTestRequest `yaml:"request"`
	Redactions  []PolicyTestRedact `yaml:"redactions"`
	Want        PolicyTestWant     `yaml:"want"`
	WantRequest *PolicyTestRequest `yaml:"want_request"`

	line int
}

// PolicyTestRequest is a request for MODIFY test cases.
type PolicyTestRequest struct {
	URL     string              `yaml:"url"`
	Headers map[string][]string `yaml:"headers"`
	// Body is compared as JSON when both sides are JSON, else as text.
	Body        string `yaml:"body"`
	ContentType string `yaml:"content_type"`
	// Error, in want_request, is a substring of the ApplyModifications error.
	Error string `yaml:"error"`
}

// PolicyTestRedact is one DLP finding for redact edits.
type PolicyTestRedact struct {
	Location    string `yaml:"location"`
	Value       string `yaml:"value"`
	Placeholder string `yaml:"placeholder"`
}

// PolicyTestWant is the expected decision. Rule, Classification and
// ReasonContains are checked only when given; "static" and "none" stand for
// the empty classification and the empty rule.
type PolicyTestWant struct {
	Verdict        string   `yaml:"verdict"`
	Rule           *string  `yaml:"rule"`
	Classification *string  `yaml:"classification"`
	ReasonContains string   `yaml:"reason_contains"`
	Step           string   `yaml:"step"`
	Changes        []string `yaml:"changes"`
}

// PolicyTestResult is the outcome of one case.
type PolicyTestResult struct {
	File     string
	Line     int
	Name     string
	Pass     bool
	Failures []string
	Decision aarm.Decision
	Diag     Diagnostic
}

// ErrPolicyTest wraps problems with a test file itself (not failed cases).
var ErrPolicyTest = errors.New("policy test file")

// RunPolicyTests runs every case of the given test files. Failed cases are
// results with Pass false; an error means a file could not be run at all.
func RunPolicyTests(files ...string) ([]PolicyTestResult, error) {
	var out []PolicyTestResult
	for _, f := range files {
		res, err := runPolicyTestFile(f)
		if err != nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

func runPolicyTestFile(file string) ([]PolicyTestResult, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicyTest, err)
	}
	tf, err := parsePolicyTestFile(file, data)
	if err != nil {
		return nil, err
	}
	p, err := loadPolicyTestPolicy(file, &tf.Policy)
	if err != nil {
		return nil, err
	}
	var out []PolicyTestResult
	for i := range tf.Cases {
		out = append(out, runPolicyTestCase(p, file, &tf.Cases[i]))
	}
	return out, nil
}

func parsePolicyTestFile(file string, data []byte) (*PolicyTestFile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPolicyTest, file, err)
	}
	var tf PolicyTestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPolicyTest, file, err)
	}
	// Case lines, for messages.
	if r := root.Content; len(r) > 0 && r[0].Kind == yaml.MappingNode {
		for i := 0; i+1 < len(r[0].Content); i += 2 {
			if r[0].Content[i].Value == "cases" {
				for j, c := range r[0].Content[i+1].Content {
					if j < len(tf.Cases) {
						tf.Cases[j].line = c.Line
					}
				}
			}
		}
	}
	if len(tf.Cases) == 0 {
		return nil, fmt.Errorf("%w: %s: no cases", ErrPolicyTest, file)
	}
	return &tf, nil
}

func loadPolicyTestPolicy(file string, n *yaml.Node) (*Policy, error) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Value == PolicyTestDefault:
		return ParsePolicy("default policy", DefaultPolicy)
	case n.Kind == yaml.ScalarNode && n.Value != "":
		path := n.Value
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(file), path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: policy: %w", ErrPolicyTest, file, n.Line, err)
		}
		return ParsePolicy(path, data)
	case n.Kind == yaml.MappingNode:
		data, err := yaml.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: inline policy: %w", ErrPolicyTest, file, err)
		}
		return ParsePolicy(file+"#policy", data)
	}
	return nil, fmt.Errorf("%w: %s: policy: write a path, %s, or an inline policy", ErrPolicyTest, file, PolicyTestDefault)
}

// policyTestRates answers Count from per-rule counts.
type policyTestRates map[string]int

// Count returns the count given for the rule the key belongs to.
func (r policyTestRates) Count(key string, _ time.Duration, _ time.Time) int {
	rest := strings.TrimPrefix(key, "rate:")
	for id, n := range r {
		if strings.HasPrefix(rest, id+":") {
			return n
		}
	}
	return 0
}

// jsonNormalize round-trips v through JSON so that tests see the same types
// (float64, []any, map[string]any) as the gate's maps.
func jsonNormalize(v any, into any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, ok := into.(*aarm.Action); ok {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(into)
}

// PolicyTestInput builds the Evaluate input of a case.
func PolicyTestInput(c *PolicyTestCase) (Input, error) {
	in := Input{Now: PolicyTestNow}
	if err := jsonNormalize(c.Action, &in.Action); err != nil {
		return in, fmt.Errorf("action: %w", err)
	}
	if c.Context != nil {
		if err := jsonNormalize(c.Context, &in.Context); err != nil {
			return in, fmt.Errorf("context: %w", err)
		}
	}
	if c.Signals != nil {
		if err := jsonNormalize(c.Signals, &in.Signals); err != nil {
			return in, fmt.Errorf("signals: %w", err)
		}
	}
	in.Identity = in.Action.Identity
	if c.Identity != nil {
		if err := jsonNormalize(c.Identity, &in.Identity); err != nil {
			return in, fmt.Errorf("identity: %w", err)
		}
		in.Action.Identity = in.Identity
	}
	if c.Now != "" {
		t, err := time.Parse(time.RFC3339, c.Now)
		if err != nil {
			return in, fmt.Errorf("now: %w", err)
		}
		in.Now = t
	}
	if c.Rates != nil {
		in.Rates = policyTestRates(c.Rates)
	} else {
		in.Rates = policyTestRates{}
	}
	return in, nil
}

func runPolicyTestCase(p *Policy, file string, c *PolicyTestCase) PolicyTestResult {
	res := PolicyTestResult{File: file, Line: c.line, Name: c.Name}
	failf := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	in, err := PolicyTestInput(c)
	if err != nil {
		failf("%v", err)
		return res
	}
	d, diag := Evaluate(p, in)
	res.Decision, res.Diag = d, diag
	w := c.Want
	if w.Verdict == "" {
		failf("want.verdict is missing")
	} else if v, err := aarm.ParseVerdict(w.Verdict); err != nil {
		failf("want.verdict: %v", err)
	} else if v != d.Verdict {
		failf("verdict: got %s, want %s (reason: %s)", d.Verdict, v, d.Reason)
	}
	if w.Rule != nil {
		want := *w.Rule
		if want == "none" {
			want = ""
		}
		if d.Rule != want {
			failf("rule: got %q, want %q", d.Rule, want)
		}
	}
	if w.Classification != nil {
		want := *w.Classification
		if want == "static" {
			want = ""
		}
		if string(d.Classification) != want {
			failf("classification: got %q, want %q", d.Classification, want)
		}
	}
	if w.ReasonContains != "" && !strings.Contains(d.Reason, w.ReasonContains) {
		failf("reason: got %q, want it to contain %q", d.Reason, w.ReasonContains)
	}
	if w.Step != "" && string(diag.Step) != w.Step {
		failf("step: got %s, want %s", diag.Step, w.Step)
	}
	if c.Request != nil || c.WantRequest != nil {
		checkPolicyTestEdit(c, d, failf)
	}
	res.Pass = len(res.Failures) == 0
	return res
}

func checkPolicyTestEdit(c *PolicyTestCase, d aarm.Decision, failf func(string, ...any)) {
	if c.Request == nil || c.WantRequest == nil {
		failf("request and want_request go together")
		return
	}
	req, err := c.Request.edit()
	if err != nil {
		failf("request: %v", err)
		return
	}
	var reds []Redaction
	for _, r := range c.Redactions {
		reds = append(reds, Redaction(r))
	}
	got, changes, err := ApplyModifications(d.Modifications, req, reds)
	want := c.WantRequest
	if want.Error != "" {
		if err == nil || !errors.Is(err, ErrModificationFailed) || !strings.Contains(err.Error(), want.Error) {
			failf("edit error: got %v, want one containing %q", err, want.Error)
		}
		return
	}
	if err != nil {
		failf("edit: %v", err)
		return
	}
	if want.URL != "" && got.URL.String() != want.URL {
		failf("url: got %s, want %s", got.URL, want.URL)
	}
	for k, v := range want.Headers {
		if g := got.Header.Values(k); !equalStrings(g, v) {
			failf("header %s: got %q, want %q", k, g, v)
		}
	}
	if !bodiesEqual(got.Body, []byte(want.Body)) {
		failf("body: got %s, want %s", got.Body, want.Body)
	}
	for _, w := range c.Want.Changes {
		found := false
		for _, ch := range changes {
			if strings.Contains(ch, w) {
				found = true
			}
		}
		if !found {
			failf("changes: got %q, want one containing %q", changes, w)
		}
	}
}

func (r *PolicyTestRequest) edit() (EditRequest, error) {
	u, err := urlParse(r.URL)
	if err != nil {
		return EditRequest{}, err
	}
	h := make(map[string][]string)
	for k, v := range r.Headers {
		h[canonicalPolicyHeader(k)] = v
	}
	return EditRequest{URL: u, Header: h, Body: []byte(r.Body), ContentType: r.ContentType}, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func bodiesEqual(a, b []byte) bool {
	var ja, jb any
	if json.Unmarshal(a, &ja) == nil && json.Unmarshal(b, &jb) == nil {
		x, _ := json.Marshal(ja)
		y, _ := json.Marshal(jb)
		return bytes.Equal(x, y)
	}
	return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
}

// FormatPolicyTestResults writes one line per case ("PASS file:line name" /
// "FAIL ...") followed by the failure details, and a summary; it returns
// the number of failures.
func FormatPolicyTestResults(w interface{ Write([]byte) (int, error) }, results []PolicyTestResult) int {
	failed := 0
	for _, r := range results {
		if r.Pass {
			fmt.Fprintf(w, "PASS %s:%d %s\n", r.File, r.Line, r.Name)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL %s:%d %s\n", r.File, r.Line, r.Name)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "     %s\n", f)
		}
	}
	fmt.Fprintf(w, "%d cases, %d passed, %d failed\n", len(results), len(results)-failed, failed)
	return failed
}

func urlParse(s string) (*url.URL, error) {
	if s == "" {
		return &url.URL{Scheme: "https", Host: "example.test", Path: "/"}, nil
	}
	return url.Parse(s)
}

func canonicalPolicyHeader(k string) string { return http.CanonicalHeaderKey(k) }
