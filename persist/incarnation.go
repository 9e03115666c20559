package persist

import (
	"strconv"
	"strings"
)

// A session id can be created again once its keys are gone (deleted, or
// expired by their TTL): createSession only checks EXISTS. Each life of an
// id is an incarnation, and its versions start again at 1. sync_events and
// sync_sessions hold the current incarnation; the rows of earlier ones move
// to sync_events_superseded, tagged with their created_at.
//
// Which incarnation an event belongs to is decided first by stream order,
// which is exact: a session's events are all in one shard stream, in the
// order the scripts ran, so each incarnation is one contiguous run of its
// session's entries, starting with session_created (version 1) and ending,
// if deleted, with session_deleted. An event's entry id is compared with
// those of the lowest and highest versions recorded of the current
// incarnation. The
// state's created_at settles what order alone cannot: an event after the
// recorded ones whose created_at differs is a newer incarnation whose
// first events are still on their way (another worker's batch, or a dead
// worker's pending entries). The delete event carries no state, so for it
// order is all there is; created_at alone would also confuse two lives
// created in the same millisecond.
//
// One case stays ambiguous: a delete that comes after the recorded events,
// while every other event of its (newer) incarnation is still unseen, and
// whose version the current one has not reached, is taken for the current
// incarnation's. Its incarnation's other events, when they come, go to
// sync_events_superseded (their created_at contradicts their place). And
// should a misplaced event still meet a recorded one of the same version,
// insertBatch sees that the stream entries differ and keeps it in
// sync_events_superseded too: nothing is dropped as a duplicate unless it
// is the same entry (or meets a row written before migration 0002, which
// has no entry id to compare).

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

// incarnation is what is known of one life of a session: its created_at
// and the lowest and highest versions seen, with their stream entries.
type incarnation struct {
	createdAt    int64 // ms
	hasCreatedAt bool
	firstV       int64 // lowest version seen; 0: nothing seen
	lastV        int64 // highest version seen
	first, last  streamPos
	// hasFirst, hasLast: the entry of firstV, lastV is known (rows written
	// before migration 0002 have none).
	hasFirst, hasLast bool
	deleted           bool // lastV is its session_deleted
}

type relation int8

const (
	sameLife relation = iota
	olderLife
	newerLife
)

// relate places e relative to c.
func (c *incarnation) relate(e *event) relation {
	if c.lastV == 0 {
		return sameLife
	}
	otherCreatedAt := e.hasCreatedAt && c.hasCreatedAt && e.createdAt != c.createdAt
	isDelete := e.typ == "session_deleted"
	switch {
	case c.hasLast && c.last.less(e.pos):
		// After everything recorded: c's next event, unless c ended or the
		// version or created_at says another life began.
		if c.deleted || e.version <= c.lastV || otherCreatedAt {
			return newerLife
		}
		return sameLife
	case c.hasLast && e.pos.less(c.last) && (isDelete || e.version >= c.lastV):
		// Before c's last event, yet a delete (always a life's last event)
		// or a version c's own earlier event cannot have.
		return olderLife
	case c.hasFirst && e.pos.less(c.first):
		if isDelete || e.version >= c.firstV || otherCreatedAt {
			return olderLife
		}
		return sameLife // an earlier event of c, late
	case c.hasFirst && c.hasLast:
		// Between two events of c, so c's own, unless its created_at says
		// otherwise: then an ambiguous delete (below) was taken for c's.
		if otherCreatedAt {
			return olderLife
		}
		return sameLife
	}
	// No entries recorded (rows from before migration 0002): created_at.
	if otherCreatedAt && e.createdAt > c.createdAt {
		return newerLife
	}
	if otherCreatedAt {
		return olderLife
	}
	return sameLife
}

// add records that e belongs to c.
func (c *incarnation) add(e *event) {
	if !c.hasCreatedAt && e.hasCreatedAt {
		c.createdAt, c.hasCreatedAt = e.createdAt, true
	}
	if c.lastV == 0 || e.version < c.firstV {
		c.firstV, c.first, c.hasFirst = e.version, e.pos, true
	}
	if e.version > c.lastV {
		c.lastV, c.last, c.hasLast, c.deleted = e.version, e.pos, true, e.typ == "session_deleted"
	}
}

func (c *incarnation) tag() *int64 {
	if !c.hasCreatedAt {
		return nil
	}
	v := c.createdAt
	return &v
}

// placement says where one event of a batch goes.
type placement struct {
	superseded bool // to sync_events_superseded rather than sync_events
	// inc is its incarnation's created_at (ms), when superseded. nil (a
	// delete carries no state): the incarnation of the recorded superseded
	// event of the version before, just before it in the stream, if any.
	inc *int64
}

// plan is a batch sorted into incarnations.
type plan struct {
	place []placement
	// switched: sessions whose recorded incarnation this batch supersedes;
	// their rows move to sync_events_superseded and their sync_sessions row
	// starts over.
	switched []string
	lives    int // incarnations superseded, recorded or within the batch
	current  int // events placed in the current incarnation
}

// classify places every event of evs, which hold each session's events in
// stream order. recorded holds the current incarnation of each session of
// the batch that has one, as PostgreSQL has it (locked for the batch).
func classify(evs []event, recorded map[string]incarnation) plan {
	type state struct {
		cur      incarnation
		inDB     bool   // cur is the recorded incarnation
		mine     []int  // events of the batch given to cur
		lastOld  *int64 // the last superseded event of the batch: its incarnation
		lastOldV int64  // and version (0: none yet)
		switched bool
	}
	p := plan{place: make([]placement, len(evs))}
	sessions := map[string]*state{}
	for i := range evs {
		e := &evs[i]
		s := sessions[e.sessionID]
		if s == nil {
			r, ok := recorded[e.sessionID]
			s = &state{cur: r, inDB: ok && r.lastV > 0}
			sessions[e.sessionID] = s
		}
		switch s.cur.relate(e) {
		case sameLife:
			s.cur.add(e)
			s.mine = append(s.mine, i)
		case newerLife:
			// cur ends here: what the batch gave it is history already.
			tag := s.cur.tag()
			for _, j := range s.mine {
				p.place[j] = placement{superseded: true, inc: tag}
			}
			if s.inDB && !s.switched {
				s.switched = true
				p.switched = append(p.switched, e.sessionID)
			}
			p.lives++
			if n := len(s.mine); n > 0 {
				s.lastOld, s.lastOldV = tag, evs[s.mine[n-1]].version
			}
			s.cur, s.inDB, s.mine = incarnation{}, false, []int{i}
			s.cur.add(e)
		case olderLife:
			var tag *int64
			switch {
			case e.hasCreatedAt:
				v := e.createdAt
				tag = &v
			case s.lastOldV > 0 && s.lastOldV == e.version-1:
				tag = s.lastOld // a delete right after its life's last event
			}
			p.place[i] = placement{superseded: true, inc: tag}
			s.lastOld, s.lastOldV = tag, e.version
		}
	}
	for _, pl := range p.place {
		if !pl.superseded {
			p.current++
		}
	}
	return p
}
