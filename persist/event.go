package persist

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/fullstate"
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
	values, err := Fields(m.Values)
	if err != nil {
		return e, err
	}
	str := func(k string) string { s, _ := values[k].(string); return s }
	e.typ = str("type")
	if !eventTypes[e.typ] {
		return e, errors.New("unknown type")
	}
	e.sessionID = str("session_id")
	if !session.IsUUID(e.sessionID) {
		return e, errors.New("session_id is not a UUID")
	}
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

// eventSlots are the fields a revision-3 script packs into an entry's
// "event", in order (lua/README.md "Audit events").
var eventSlots = [...]string{"version", "life", "participant_id", "group_id", "time_remaining_ms",
	"time_elapsed_ms", "cycle_number", "timestamp", "actor"}

// Fields returns an audit entry's fields in the field-per-field layout: an
// entry of the packed layout (type, session_id, event, state: a packed
// message) gets the event's slots as decimal text and the state rendered
// as v1 JSON with its kind, full or delta; any other entry is returned as
// it is.
func Fields(in map[string]any) (map[string]any, error) {
	ev, ok := in["event"].(string)
	if !ok {
		return in, nil
	}
	v, err := fullstate.UnpackArray([]byte(ev), len(eventSlots))
	if err != nil {
		return nil, errors.New("bad event")
	}
	out := map[string]any{"type": in["type"], "session_id": in["session_id"]}
	for i, k := range eventSlots {
		switch x := v[i].(type) {
		case string:
			out[k] = x
		case int64:
			out[k] = strconv.FormatInt(x, 10)
		case uint64:
			out[k] = strconv.FormatUint(x, 10)
		case float64: // the embedded Redis packs with cjson
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return nil, errors.New("bad " + k)
		}
	}
	if st, _ := in["state"].(string); st != "" {
		d, err := fullstate.Decode([]byte(st))
		if err != nil {
			return nil, errors.New("bad state")
		}
		if d.Full {
			out["state_kind"], out["state"] = "full", string(fullstate.Build(d.Session, d.Participants))
		} else {
			out["state_kind"], out["state"] = "delta", string(d.JSON())
		}
	}
	return out, nil
}
