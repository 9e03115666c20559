package handlers

import (
	"strings"
	"testing"
)

// TestTransitionMessage: every refused (call, status) pair says the status
// and what to do instead.
func TestTransitionMessage(t *testing.T) {
	const id = sid
	for _, tc := range []struct{ op, from, hint string }{
		{"start", "running", "POST /v1/sessions/{id}/pause"},
		{"start", "paused", "resume it (POST /v1/sessions/{id}/resume)"},
		{"switch", "pending", "start it first (POST /v1/sessions/{id}/start)"},
		{"switch", "paused", "resume it first (POST /v1/sessions/{id}/resume)"},
		{"pause", "pending", "start it first (POST /v1/sessions/{id}/start)"},
		{"pause", "paused", "already paused"},
		{"resume", "pending", "start it (POST /v1/sessions/{id}/start)"},
		{"resume", "running", "pause it first (POST /v1/sessions/{id}/pause)"},
	} {
		got := transitionMessage(tc.op, id, []byte(`{"from":"`+tc.from+`","to":"running","version":3}`))
		if !strings.HasPrefix(got, "Session "+id+" is "+tc.from+": ") || !strings.Contains(got, tc.hint) {
			t.Errorf("%s from %s: %q, want it to contain %q", tc.op, tc.from, got, tc.hint)
		}
	}
	for _, op := range []string{"start", "switch", "pause", "resume", "complete"} {
		for _, from := range []string{"completed", "expired", "cancelled"} {
			got := transitionMessage(op, id, []byte(`{"from":"`+from+`","to":"x","version":9}`))
			if !strings.HasPrefix(got, "Session "+id+" is "+from+": ") || !strings.Contains(got, "create a new session (POST /v1/sessions)") {
				t.Errorf("%s from %s: %q", op, from, got)
			}
		}
	}
	if got := transitionMessage("start", id, nil); got != "Invalid state transition" {
		t.Errorf("without details: %q", got)
	}
}
