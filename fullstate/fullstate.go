// Package fullstate turns what the scripts publish and return (a packed
// message: lua/README.md "Packed messages") into the v1 state: the whole
// state of a small session, or for a large one a delta (the session head
// plus the participants that changed). One Assembler per instance keeps the
// last full state of each large session it has seen, so the cost of a delta
// is paid once per instance, not once per client.
//
// A stored or published value comes in one of three encodings, told apart
// by its first byte (UnpackArray): revision 4's binary layouts
// (binary.go), which the scripts write with Redis's struct library
// because cmsgpack is slow inside a script; revision 3's MessagePack, read
// for what was stored, published or recorded before an upgrade; and JSON
// from the embedded dev Redis, which has neither library.
package fullstate

import (
	"bytes"
	"context"
	"errors"
	"sync"

	json "github.com/goccy/go-json"
)

// Fetch reads a session's current state as a head (the state without
// "participants") and the participants in rotation order.
type Fetch func(ctx context.Context, id string) (head []byte, parts [][]byte, err error)

// Delta is a decoded state message: a packed one rendered (the whole state
// when Full, else a delta), or a STATE_DELTA in JSON from a revision-2
// script (lua/README.md "Packed messages", "Applying a delta").
type Delta struct {
	SessionID    string            `json:"sessionId"`
	Timestamp    int64             `json:"timestamp"`
	Version      int64             `json:"version"`
	Life         int64             `json:"life"` // lua/README.md "Lives"; 0 from scripts before lives
	BaseVersion  int64             `json:"base_version"`
	Count        int               `json:"participant_count"`
	Session      json.RawMessage   `json:"session"`
	Positions    []int             `json:"positions"`
	Participants []json.RawMessage `json:"participants"`

	// Full: a packed message of kind "f", the whole state (Participants
	// in rotation order, no Positions), which needs no base.
	Full bool `json:"-"`
}

// Assembler caches the last full state of up to max large sessions.
type Assembler struct {
	fetch Fetch
	max   int

	mu       sync.Mutex
	sessions map[string]*entry
}

type entry struct {
	mu      sync.Mutex
	life    int64 // of version: a delta of another life has no base here
	version int64
	head    []byte
	parts   [][]byte
}

// New returns an Assembler that remembers at most max sessions and reads
// sessions it has not seen (or has fallen behind on) with fetch.
func New(fetch Fetch, max int) *Assembler {
	return &Assembler{fetch: fetch, max: max, sessions: make(map[string]*entry)}
}

var errBadDelta = errors.New("fullstate: malformed STATE_DELTA")

// Decode parses a packed message, or a STATE_DELTA in JSON (as the
// revision-2 scripts published it).
func Decode(msg []byte) (*Delta, error) {
	if len(msg) > 0 && msg[0] != '{' {
		return decodePacked(msg)
	}
	var d Delta
	if err := json.Unmarshal(msg, &d); err != nil {
		return nil, err
	}
	if d.SessionID == "" || len(d.Session) < 2 || len(d.Positions) != len(d.Participants) {
		return nil, errBadDelta
	}
	for _, p := range d.Positions {
		if p < 0 || p >= d.Count {
			return nil, errBadDelta
		}
	}
	return &d, nil
}

// Apply returns the full state that delta d describes.
func (a *Assembler) Apply(ctx context.Context, d *Delta) ([]byte, error) {
	if d.Full {
		return Build(d.Session, d.Participants), nil
	}
	e := a.entry(d.SessionID)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.life != d.Life { // the id was created again: nothing cached is its base
		e.life, e.version, e.head, e.parts = d.Life, -1, nil, nil
	}
	switch {
	case d.BaseVersion == 0 && len(d.Positions) == d.Count:
		// a create carries every participant
		e.version, e.head, e.parts = 0, nil, make([][]byte, d.Count)
	case e.version == d.BaseVersion && len(e.parts) == d.Count:
	case e.version >= d.Version && len(e.parts) == d.Count:
		// already past this delta (it was applied, or a newer state was
		// fetched): answer with the delta laid over a copy, keep the cache
		return Build(d.Session, overlay(append([][]byte(nil), e.parts...), d)), nil
	default:
		head, parts, err := a.fetch(ctx, d.SessionID)
		if err != nil {
			return nil, err
		}
		if len(parts) != d.Count {
			return Build(d.Session, overlay(parts, d)), nil
		}
		e.version, e.head, e.parts = d.BaseVersion, head, parts
	}
	overlay(e.parts, d)
	e.version, e.head = d.Version, d.Session
	return Build(e.head, e.parts), nil
}

// Forget drops a session from the cache (after it was deleted).
func (a *Assembler) Forget(id string) {
	a.mu.Lock()
	delete(a.sessions, id)
	a.mu.Unlock()
}

func (a *Assembler) entry(id string) *entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.sessions[id]
	if e == nil {
		if len(a.sessions) >= a.max {
			for k := range a.sessions { // evict an arbitrary session
				delete(a.sessions, k)
				break
			}
		}
		e = &entry{version: -1}
		a.sessions[id] = e
	}
	return e
}

func overlay(parts [][]byte, d *Delta) [][]byte {
	for i, p := range d.Positions {
		if p < len(parts) {
			parts[p] = d.Participants[i]
		}
	}
	return parts
}

// Build joins a head and its participants into the full state:
// the head minus its closing brace, then ,"participants":[...]}.
func Build[P ~[]byte](head []byte, parts []P) []byte {
	head = bytes.TrimRight(head, " \n")
	n := len(head) + 20
	for _, p := range parts {
		n += len(p) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, head[:len(head)-1]...)
	out = append(out, `,"participants":[`...)
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return append(out, "]}"...)
}
