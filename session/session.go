// Package session holds the vocabulary shared by the script wrapper, the
// HTTP handlers and the WebSocket relay: what a create or switch asks for,
// and the errors a transition can end in.
package session

import "time"

// Sync modes accepted at create.
const (
	ModePerParticipant = "per_participant"
	ModePerCycle       = "per_cycle"
	ModePerGroup       = "per_group"
	ModeGlobal         = "global"
	ModeCountUp        = "count_up"
)

// Modes lists every sync mode.
var Modes = []string{ModePerParticipant, ModePerCycle, ModePerGroup, ModeGlobal, ModeCountUp}

// Participant is one participant as given at create.
type Participant struct {
	ID          string
	Index       int64
	TotalTimeMS int64
	GroupID     string // "" when none
}

// Config is a validated create request. Zero optional numbers mean unset
// unless their Has flag is set.
type Config struct {
	ID             string
	SyncMode       string
	TotalTimeMS    *int64
	TimePerCycleMS *int64
	IncrementMS    *int64
	MaxTimeMS      *int64
	AutoAdvance    bool
	Metadata       []byte // raw JSON object, nil when absent
	Participants   []Participant
	WarningsMS     []int64 // TIME_WARNING thresholds (ms left), none when empty
}

// SwitchArgs is a validated switch request; empty strings and a zero
// ExpectedVersion mean unset.
type SwitchArgs struct {
	ExpectedVersion      int64
	CurrentParticipantID string
	NextParticipantID    string
}

// Call is what one API request adds to a transition beyond its arguments:
// its Idempotency-Key and who asked. A nil *Call is a call without either.
type Call struct {
	// IdemKey is the request's Idempotency-Key ("" none) and Fingerprint a
	// digest of the request (route, body, preconditions) that a repeat must
	// match; the engine keeps the reply for IdemTTL.
	IdemKey, Fingerprint string
	// Actor is who asked (a token's sub), recorded in the audit event.
	Actor string
	// Replayed is set by the engine when the reply is the one kept for
	// IdemKey: nothing changed this time.
	Replayed bool
	// Budget, when set, is the session's switch budget: the switch script
	// charges it in the same step (lua/switchCycle5-8.lua), and the engine
	// fills in what is left.
	Budget *Budget
	// Caller, when set, is the caller's request budget (Key names it), which
	// the switch then charges in the same step instead of a call of its own
	// before it: on a single Redis only, where a script may touch a key
	// outside the session's slot.
	Caller *Budget
}

// Budget is a per-session rate budget: Burst calls at once, one earned
// back per Interval. Remaining and ResetAfter are the engine's answer
// after a call that charged it.
type Budget struct {
	Key      string // the caller's budget only: its key (the session's is the session's)
	Burst    int64
	Interval time.Duration

	Charged    bool // the call charged it (not a replay), so the two below are set
	Remaining  int64
	ResetAfter time.Duration // until the budget is full again
}
