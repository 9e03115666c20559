package session

import (
	"errors"
	"strings"
)

// Error is a failure with a stable code, as the Lua scripts report it:
// "<CODE> <details JSON>".
type Error struct {
	Code    string
	Details []byte // raw JSON object or array, nil when none
}

func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Code
	}
	return e.Code + " " + string(e.Details)
}

// Is matches any *Error with the same code, so errors.Is(err, ErrConflict)
// holds whatever the details.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Sentinels, one per code the scripts return (lua/README.md lists them).
var (
	ErrSessionNotFound     = &Error{Code: "SESSION_NOT_FOUND"}
	ErrSessionExists       = &Error{Code: "SESSION_EXISTS"}
	ErrInvalidTransition   = &Error{Code: "INVALID_STATE_TRANSITION"}
	ErrParticipantNotFound = &Error{Code: "PARTICIPANT_NOT_FOUND"}
	ErrConflict            = &Error{Code: "CONFLICT"}
	ErrValidation          = &Error{Code: "VALIDATION_ERROR"}
	ErrStreamFull          = &Error{Code: "STREAM_FULL"}
	ErrIdempotencyReused   = &Error{Code: "IDEMPOTENCY_KEY_REUSED"}
	ErrRateLimited         = &Error{Code: "RATE_LIMITED"} // a budget the switch charges is spent
)

// Failures of the call itself rather than of the transition: Redis could
// not be reached (nothing was sent, retrying is safe), or the call was sent
// and no answer came (it may have run: re-read, or retry with the same
// Idempotency-Key).
var (
	ErrUnavailable    = &Error{Code: "UNAVAILABLE"}
	ErrOutcomeUnknown = &Error{Code: "OUTCOME_UNKNOWN"}
)

// ParseScriptError turns a script's error reply into an *Error. It returns
// nil when msg does not start with a known code.
func ParseScriptError(msg string) *Error {
	code, details, _ := strings.Cut(msg, " ")
	switch code {
	case ErrSessionNotFound.Code, ErrSessionExists.Code, ErrInvalidTransition.Code,
		ErrParticipantNotFound.Code, ErrConflict.Code, ErrValidation.Code, ErrStreamFull.Code,
		ErrIdempotencyReused.Code, ErrRateLimited.Code:
	default:
		return nil
	}
	e := &Error{Code: code}
	if details = strings.TrimSpace(details); details != "" {
		e.Details = []byte(details)
	}
	return e
}
