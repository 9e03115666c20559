package persist

import (
	"strconv"
	"strings"
)

// A session id can be created again once its keys are gone (deleted, or
// expired by their TTL), and the new session's versions start again at 1.
// createSession stamps each session with a life (lua/README.md, "Lives"),
// a number rising within the id's shard, and every audit event carries it,
// so rows are keyed by (session_id, life, version) and which life an event
// belongs to is read, never guessed. sync_events and sync_sessions hold a
// session id's newest life seen; the rows of earlier lives are kept in
// sync_events_superseded with their life. An event of a newer life than
// the recorded one moves the recorded rows there (however late the newer
// life's first events are), and an event of an older life goes there
// directly (a redelivery, or another worker's late batch).
//
// Events written before lives existed are all life 0: one life 0 row per
// version stays current, and another stream entry under the same version
// (an earlier life of the id, from before the upgrade) is kept in
// sync_events_superseded (insertClashes).

// streamPos is a stream entry id, "ms-seq", in Redis's order.
type streamPos struct{ ms, seq uint64 }

func parsePos(id string) (streamPos, bool) {
	a, b, ok := strings.Cut(id, "-")
	if !ok {
		return streamPos{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamPos{ms, seq}, err1 == nil && err2 == nil
}

func (p streamPos) less(q streamPos) bool { return p.ms < q.ms || p.ms == q.ms && p.seq < q.seq }

// plan is a batch sorted by life.
type plan struct {
	superseded []bool // per event: to sync_events_superseded rather than sync_events
	// switched: sessions whose recorded life this batch supersedes; their
	// rows move to sync_events_superseded and their sync_sessions row
	// starts over.
	switched []string
	lives    int // lives superseded, recorded or within the batch
	current  int // events placed in the current life
}

// classify places every event of evs. recorded holds the life of the rows
// in sync_events of each session of the batch that has some, as PostgreSQL
// has it (locked for the batch).
func classify(evs []event, recorded map[string]int64) plan {
	type state struct {
		life     int64
		inDB     bool  // life is the recorded one
		mine     []int // events of the batch given to life
		switched bool
	}
	p := plan{superseded: make([]bool, len(evs))}
	sessions := map[string]*state{}
	for i := range evs {
		e := &evs[i]
		s := sessions[e.sessionID]
		if s == nil {
			life, ok := recorded[e.sessionID]
			if !ok {
				life = e.life
			}
			s = &state{life: life, inDB: ok}
			sessions[e.sessionID] = s
		}
		switch {
		case e.life == s.life:
			s.mine = append(s.mine, i)
		case e.life < s.life:
			p.superseded[i] = true
		default: // a newer life: what the batch gave the older one is history
			for _, j := range s.mine {
				p.superseded[j] = true
			}
			if s.inDB && !s.switched {
				s.switched = true
				p.switched = append(p.switched, e.sessionID)
			}
			p.lives++
			s.life, s.inDB, s.mine = e.life, false, []int{i}
		}
	}
	for _, sup := range p.superseded {
		if !sup {
			p.current++
		}
	}
	return p
}
