package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Webhook is one destination told about new holds.
type Webhook struct {
	URL string
	// Format is "json" (the hold as JSON) or "slack" (a Slack-compatible
	// incoming-webhook message).
	Format string
}

// notifyTimeout bounds one notification.
const notifyTimeout = 10 * time.Second

// NewNotifier returns a HoldOptions.Notify function posting each new hold to
// every webhook, with a link to the hold on the dashboard. Failures are
// logged; a hold never waits on its notification.
func NewNotifier(hooks []Webhook, dashboardURL string, log *slog.Logger) func(*Hold) {
	if len(hooks) == 0 {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // aarm's own traffic never goes through an environment proxy
	client := &http.Client{Transport: tr, Timeout: notifyTimeout}
	return func(h *Hold) {
		link := strings.TrimSuffix(dashboardURL, "/") + "/holds/" + h.ID
		for _, hook := range hooks {
			body, err := notificationBody(hook.Format, h, link)
			if err != nil {
				log.Error("hold notification", "hold", h.ID, "err", err)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
			if err != nil {
				cancel()
				log.Error("hold notification", "hold", h.ID, "err", err)
				continue
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			cancel()
			if err != nil {
				log.Warn("hold notification failed", "hold", h.ID, "format", hook.Format, "err", err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				log.Warn("hold notification refused", "hold", h.ID, "format", hook.Format, "status", resp.StatusCode)
			}
		}
	}
}

// notificationBody renders a hold for a webhook.
func notificationBody(format string, h *Hold, link string) ([]byte, error) {
	if format == "slack" {
		who := h.Action.Identity.Agent
		if h.Action.Identity.Human != "" {
			who = fmt.Sprintf("%s for %s", who, h.Action.Identity.Human)
		}
		kind := "Approval needed"
		if h.Source == HoldDefer {
			kind = "Deferred, waiting for context"
		}
		text := fmt.Sprintf("*%s* (%s risk): %s wants %s / %s on %s\n> %s\nIntent: %s\nExpires %s — <%s|review the hold>",
			kind, orDash(string(h.Decision.RiskLevel)), slackEscape(who), slackEscape(h.Action.Tool), slackEscape(h.Action.Operation),
			slackEscape(orDash(h.Action.Target)), slackEscape(h.Decision.Reason), slackEscape(orDash(h.Intent)),
			h.ExpiresAt.UTC().Format(time.RFC3339), link)
		return json.Marshal(map[string]string{"text": text})
	}
	return json.Marshal(map[string]any{"type": "aarm.hold." + string(h.Source), "hold": h, "link": link})
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// slackEscape neutralises Slack's control characters in agent-supplied text,
// so a target or reason cannot smuggle a link or a mention into the message.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
