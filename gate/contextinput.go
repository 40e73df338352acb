package gate

// ContextInput is context supplied for a session from outside the agent's
// traffic (POST /api/v1/sessions/{id}/context or the dashboard): the original
// intent when the session has none, and facts a deferred action may wait for.
type ContextInput struct {
	Intent string         `json:"intent,omitempty"`
	Facts  map[string]any `json:"facts,omitempty"`
	// Source names who supplied it (an approver, a resolver); recorded.
	Source string `json:"source,omitempty"`
}
