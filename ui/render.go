package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ledger"
)

// Every page is an html/template set of layout.html plus the page's file, so
// every value is escaped for the context it lands in (HTML text, attribute,
// URL). No template function returns template.HTML, template.JS or
// template.URL: nothing agent-supplied can leave its context (DESIGN.md §7.3).
var pageNames = []string{"login", "error", "holds", "hold", "blocked", "sessions", "session", "receipts", "receipt", "policy"}

type pageTemplate = template.Template

// page is what every page template gets.
type page struct {
	Title   string
	Nav     string
	Error   string
	Flash   string
	Who     gate.Approver
	CSRF    string
	Pending int
	Now     time.Time
	Body    any
}

func parsePages() (map[string]*pageTemplate, error) {
	out := make(map[string]*pageTemplate, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render executes a page into a buffer first, so a template error never
// leaves half a page behind.
func (d *dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	d.fill(r, &p)
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		d.log.Error("render dashboard page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderFragment executes one named template of a page alone.
func (d *dashboard) renderFragment(w http.ResponseWriter, r *http.Request, name, tmpl string, p page) {
	d.fill(r, &p)
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		d.log.Error("render dashboard fragment", "page", name, "template", tmpl, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (d *dashboard) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d.render(w, r, status, "error", page{Title: http.StatusText(status), Error: msg})
}

func (d *dashboard) fill(r *http.Request, p *page) {
	p.Now = d.now()
	if ws := webSessionFrom(r.Context()); ws != nil {
		p.Who, p.CSRF = ws.who, ws.csrf
		p.Pending = d.pendingCount()
	}
}

var templateFuncs = template.FuncMap{
	"pretty":    prettyJSON,
	"dur":       humanDuration,
	"ts":        timestamp,
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago":       func(now, t time.Time) string { return humanDuration(now.Sub(t)) + " ago" },
	"riskClass": riskClass,
	"verdictClass": func(v aarm.Verdict) string {
		switch v {
		case aarm.Allow:
			return "v-allow"
		case aarm.Modify:
			return "v-modify"
		case aarm.StepUp:
			return "v-stepup"
		case aarm.Defer:
			return "v-defer"
		default:
			return "v-deny"
		}
	},
	"stateClass": func(s gate.HoldState) string {
		switch s {
		case gate.HoldPending:
			return "s-pending"
		case gate.HoldApproved, gate.HoldReleased:
			return "s-released"
		default:
			return "s-denied"
		}
	},
	"short": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
	"join": strings.Join,
	"score": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f", *f)
	},
	"conf":   func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"isZero": func(t time.Time) bool { return t.IsZero() },
	"verdictOf": func(r *aarm.Receipt) string {
		if r.Decision == nil {
			return ""
		}
		return r.Decision.Verdict.String()
	},
	"hex":      func(b []byte) string { return fmt.Sprintf("%x", b) },
	"reportOK": func(r *ledger.Report) bool { return r != nil && r.OK() },
}

// riskClass maps a risk level to a fixed CSS class (never echoing the value).
func riskClass(r aarm.RiskLevel) string {
	switch r {
	case aarm.RiskCritical:
		return "risk-critical"
	case aarm.RiskHigh:
		return "risk-high"
	case aarm.RiskMedium:
		return "risk-medium"
	case aarm.RiskLow:
		return "risk-low"
	}
	return "risk-none"
}

// prettyJSON indents v for a <pre> block. HTML characters are left as they
// are here because html/template escapes the whole string where it is used.
func prettyJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimRight(buf.String(), "\n")
}

// humanDuration renders d coarsely: "42s", "3m 05s", "2h 10m", "3d 4h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	s := int64(math.Round(d.Seconds()))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh %02dm", s/3600, (s%3600)/60)
	default:
		return fmt.Sprintf("%dd %dh", s/86400, (s%86400)/3600)
	}
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// holdDetailView is everything AARM says an approver must see (AARM-NOTES
// §4): intent, the action and its parameters, prior actions, data
// classifications, DLP findings and taint sources, destination provenance,
// alignment and drift, risk, confidence, identity chain, matched rule and
// reason, STEP_UP or DEFER, and the time left.
type holdDetailView struct {
	Hold             *gate.Hold
	Left             time.Duration
	Pending          bool
	StepUp           bool
	Params           []param
	Prior            []priorRow
	DataClasses      string
	DLP              string
	Taint            string
	Provenance       string
	Drift            string
	Signals          string
	Context          string
	CanSupplyContext bool
	Timeline         []*aarm.Receipt
}

type param struct {
	Name, Value string
}

type priorRow struct {
	Time, Tool, Operation, Effect, Target, Verdict string
}

func (d *dashboard) holdDetail(h *gate.Hold) holdDetailView {
	v := holdDetailView{
		Hold: h, Left: timeLeft(h, d.now()), Pending: h.State == gate.HoldPending, StepUp: h.Source == gate.HoldStepUp,
		CanSupplyContext: h.State == gate.HoldPending && h.Source == gate.HoldDefer && d.context != nil && h.Action.Identity.Session != "",
	}
	for _, k := range sortedKeys(h.Action.Parameters) {
		v.Params = append(v.Params, param{Name: k, Value: displayValue(h.Action.Parameters[k])})
	}
	if prior, ok := h.Context["prior_actions"].([]any); ok {
		for _, p := range prior {
			m, _ := p.(map[string]any)
			v.Prior = append(v.Prior, priorRow{
				Time: str(m["time"]), Tool: str(m["tool"]), Operation: str(m["operation"]),
				Effect: str(m["effect"]), Target: str(m["target"]), Verdict: str(m["verdict"]),
			})
		}
	}
	pick := func(keys ...string) string {
		for _, src := range []map[string]any{h.Signals, h.Context} {
			for _, k := range keys {
				if x, ok := src[k]; ok && x != nil {
					return prettyJSON(x)
				}
			}
		}
		return ""
	}
	v.DataClasses = pick("data_classes", "classifications", "data_classifications", "classification")
	v.DLP = pick("dlp", "dlp_findings")
	v.Taint = pick("taint", "taint_sources")
	v.Provenance = pick("provenance", "destination_provenance", "entity_provenance")
	v.Drift = pick("drift", "semantic_distance")
	if len(h.Signals) > 0 {
		v.Signals = prettyJSON(h.Signals)
	}
	if len(h.Context) > 0 {
		v.Context = prettyJSON(h.Context)
	}
	if d.receipts != nil && h.Action.Identity.Session != "" {
		if rs, err := d.receipts.List(ledger.Query{Session: h.Action.Identity.Session, Reverse: true, Limit: 20}); err == nil {
			v.Timeline = rs
		}
	}
	return v
}

// displayValue shows a string as it is and anything else as indented JSON.
func displayValue(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	return prettyJSON(x)
}

func str(x any) string {
	if x == nil {
		return ""
	}
	if s, ok := x.(string); ok {
		return s
	}
	return fmt.Sprint(x)
}
