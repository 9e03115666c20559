package session

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseScriptError(t *testing.T) {
	sentinels := []*Error{ErrSessionNotFound, ErrSessionExists, ErrInvalidTransition, ErrParticipantNotFound,
		ErrConflict, ErrValidation, ErrStreamFull}
	for _, s := range sentinels {
		msg := s.Code + ` {"session_id":"x"}`
		e := ParseScriptError(msg)
		if e == nil || e.Code != s.Code || string(e.Details) != `{"session_id":"x"}` {
			t.Fatalf("ParseScriptError(%q) = %+v", msg, e)
		}
		if e.Error() != msg {
			t.Errorf("Error() = %q, want %q", e.Error(), msg)
		}
		var err error = fmt.Errorf("wrapped: %w", e)
		for _, other := range sentinels {
			if errors.Is(err, other) != (other == s) {
				t.Errorf("errors.Is(%s, %s) = %v", s.Code, other.Code, !(other == s))
			}
		}
	}
	// no details
	e := ParseScriptError("CONFLICT")
	if e == nil || e.Details != nil || e.Error() != "CONFLICT" {
		t.Errorf("bare code: %+v", e)
	}
	if e := ParseScriptError("CONFLICT   "); e == nil || e.Details != nil {
		t.Errorf("code with blanks: %+v", e)
	}
	for _, msg := range []string{"", "ERR something", "NOSCRIPT No matching script", "conflict {}", "CONFLICTS {}"} {
		if e := ParseScriptError(msg); e != nil {
			t.Errorf("ParseScriptError(%q) = %+v, want nil", msg, e)
		}
	}
	if errors.Is(errors.New("CONFLICT"), ErrConflict) {
		t.Error("a plain error matched a sentinel")
	}
}

func TestModes(t *testing.T) {
	want := map[string]bool{"per_participant": true, "per_cycle": true, "per_group": true, "global": true, "count_up": true}
	if len(Modes) != len(want) {
		t.Fatalf("Modes = %v", Modes)
	}
	for _, m := range Modes {
		if !want[m] {
			t.Errorf("unknown mode %q", m)
		}
	}
}
