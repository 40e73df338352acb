package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/aarmproxy/aarm/gate"
)

// sseHeartbeat keeps idle event streams open through proxies and lets the
// server notice a client that went away.
const sseHeartbeat = 15 * time.Second

// holdEventData is what an event on /events/holds carries: identifiers and
// states only. The page fetches the rendered (escaped) table when it hears
// one, so no agent-supplied text travels in the stream.
type holdEventData struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Source gate.HoldSource `json:"source"`
	State  gate.HoldState  `json:"state"`
	Risk   string          `json:"risk,omitempty"`
}

// holdEvents streams hold events as server-sent events ("event: hold").
func (d *dashboard) holdEvents(w http.ResponseWriter, r *http.Request) {
	if d.holds == nil {
		http.Error(w, "the hold queue is not enabled", http.StatusNotImplemented)
		return
	}
	rc := http.NewResponseController(w)
	events, unsubscribe := d.holds.SubscribeHolds()
	defer unsubscribe()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 3000\n: aarm hold events\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.closing:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			data := holdEventData{Type: ev.Type}
			if ev.Hold != nil {
				data.ID, data.Source, data.State, data.Risk = ev.Hold.ID, ev.Hold.Source, ev.Hold.State, string(ev.Hold.Decision.RiskLevel)
			}
			b, err := json.Marshal(data) // escapes <, > and & as well
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "event: hold\ndata: %s\n\n", b); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// CloseStreams ends every open event stream of the dashboard (they would
// otherwise hold http.Server.Shutdown for its whole grace period). Register
// it with the admin http.Server's RegisterOnShutdown; it is safe to call more
// than once.
func (s *Server) CloseStreams() {
	s.dash.closeOnce.Do(func() { close(s.dash.closing) })
}
