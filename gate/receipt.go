package gate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/inspect"
)

// sensitiveParam names parameters whose values never go into a receipt or a
// log in the clear (AARM R5: values the policy marks sensitive are replaced
// by their SHA-256). Rule packs name such captures with a leading
// underscore ("/bot{_token}/sendMessage").
var sensitiveParam = regexp.MustCompile(`(?i)^_|token|secret|passw|api[_-]?key|authori[sz]ation|credential|private[_-]?key|signature|cookie`)

// receiptAction is the action as a receipt records it: sensitive parameter
// values (by name, or because DLP finds a secret in them) are replaced by
// "sha256:<hex>", and where such a value also appears in the path it is
// replaced there by the parameter's name.
func (g *Gate) receiptAction(a aarm.Action) aarm.ReceiptAction {
	sensitive := map[string]bool{}
	for k, v := range a.Parameters {
		if sensitiveParam.MatchString(k) {
			sensitive[k] = true
			continue
		}
		text, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v) // lists and objects: scan their leaves as JSON text
			text = string(b)
		}
		if text != "" && g.hasSecret(text) {
			sensitive[k] = true
		}
	}
	ra := aarm.RecordAction(a, func(k string) bool { return sensitive[k] })
	ra.Path = redactPath(ra.Path, a.Parameters, sensitive)
	// A secret in a path no parameter holds (an unknown host's URL).
	for _, f := range g.ctx.scanner.Scan([]inspect.Field{{Location: "url.path", Value: ra.Path}}) {
		if f.Category == inspect.CategorySecret && f.Value != "" && !strings.Contains(f.Location, "|") {
			ra.Path = strings.ReplaceAll(ra.Path, f.Value, f.Placeholder)
		}
	}
	return ra
}

func (g *Gate) hasSecret(text string) bool {
	for _, f := range g.ctx.scanner.Scan([]inspect.Field{{Location: "param", Value: text}}) {
		if f.Category == inspect.CategorySecret {
			return true
		}
	}
	return false
}

// redactPath replaces sensitive parameter values inside a path.
func redactPath(path string, params map[string]any, sensitive map[string]bool) string {
	for k := range sensitive {
		if s := fmt.Sprint(params[k]); len(s) >= 4 {
			path = strings.ReplaceAll(path, s, "{"+k+"}")
		}
	}
	return path
}
