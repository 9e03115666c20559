package persist

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/session"
)

// event is one decoded stream entry (lua/README.md, "Audit events").
type event struct {
	stream, id string         // where it came from
	values     map[string]any // the raw fields, for the dead-letter stream

	sessionID                 string
	life, version             int64 // lua/README.md "Lives": 0 for events from before lives
	typ                       string
	participantID, groupID    *string
	remaining, elapsed, cycle *int64
	timestampMS               int64
	stateKind                 string
	state                     *string
	actor                     *string // the caller's sub (AUTH_MODE=jwt); nil when none
}

var eventTypes = map[string]bool{
	"session_created": true, "session_started": true, "cycle_switched": true,
	"participant_expired": true, "session_paused": true, "session_resumed": true,
	"session_completed": true, "session_deleted": true, "session_expired": true,
}

// decode checks everything PostgreSQL would otherwise reject, so one bad
// entry goes to the dead-letter stream instead of failing (and forever
// retrying) the whole batch.
func decode(stream string, m redis.XMessage) (event, error) {
	e := event{stream: stream, id: m.ID}
	if _, ok := parsePos(m.ID); !ok {
		return e, errors.New("bad entry id")
	}
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	e.typ = str("type")
	if !eventTypes[e.typ] {
		return e, errors.New("unknown type")
	}
	e.sessionID = str("session_id")
	if !session.IsUUID(e.sessionID) {
		return e, errors.New("session_id is not a UUID")
	}
	var err error
	if e.version, err = strconv.ParseInt(str("version"), 10, 64); err != nil || e.version < 1 {
		return e, errors.New("bad version")
	}
	if l := str("life"); l != "" {
		if e.life, err = strconv.ParseInt(l, 10, 64); err != nil || e.life < 0 {
			return e, errors.New("bad life")
		}
	}
	if e.timestampMS, err = strconv.ParseInt(str("timestamp"), 10, 64); err != nil || e.timestampMS < 0 {
		return e, errors.New("bad timestamp")
	}
	for _, f := range []struct {
		k   string
		dst **string
	}{{"participant_id", &e.participantID}, {"group_id", &e.groupID}} {
		if s := str(f.k); s != "" {
			if !session.IsUUID(s) {
				return e, errors.New(f.k + " is not a UUID")
			}
			*f.dst = &s
		}
	}
	for _, f := range []struct {
		k   string
		dst **int64
	}{{"time_remaining_ms", &e.remaining}, {"time_elapsed_ms", &e.elapsed}, {"cycle_number", &e.cycle}} {
		if s := str(f.k); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return e, errors.New("bad " + f.k)
			}
			*f.dst = &n
		}
	}
	if s := str("actor"); s != "" {
		// PostgreSQL text takes neither NUL nor invalid UTF-8.
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return e, errors.New("actor is not valid text")
		}
		e.actor = &s
	}
	e.stateKind = str("state_kind")
	switch e.stateKind {
	case "":
	case "full", "delta":
		s := str("state")
		if !json.Valid([]byte(s)) {
			return e, errors.New("state is not JSON")
		}
		e.state = &s
	default:
		return e, errors.New("unknown state_kind")
	}
	return e, nil
}
