package fullstate

import (
	"bytes"
	"encoding/binary"
	"math"
)

// Revision 4 writes every stored and published value in a fixed binary
// layout, with Redis's struct library (big-endian, no alignment), because
// cmsgpack costs a script about a thousand instructions an element. A value
// opens with a one-byte tag that no older layout opens with (MessagePack
// arrays open with 0x90-0x9f or 0xdc, JSON with '[' or '{'), so UnpackArray
// tells the layouts apart by the first byte. The slot array is revision
// 3's, slot for slot, so the renderers do not know which layout they read.
// Anyone who can publish on a state channel reaches every relay, so the
// reader is strict: it takes only what the layouts can express.

// A field is how one slot (two, for entries) of a layout is written, in
// struct format letters, and the slot it gives.
type field uint8

const (
	fStr16  field = iota // Hc0: string
	fStr32               // I4c0: string
	fInt32               // i4: int64
	fUint32              // I4: int64
	fInt64               // i8: int64; none is refused, as the slot always holds a number
	fOpt64               // i8: int64, or "" for none
	fBool                // B: bool, from 0 or 1
	fKind                // c1: "f" or "d"
	fGroups              // I4c0 filled with (Hc0 group id, i8 bank), each group once: map[string]any of int64
)

// none is the int64 minimum, which an i8 slot holds for "no number"
// (revision 3's "").
const none = math.MinInt64

// The tags, and the fields after each in slot order, with the struct
// format the scripts write them with.
const (
	tagParticipant = 'P'
	tagCfg         = 'C'
	tagSt          = 'S'
	tagEvent       = 'E'
	tagMessage     = 'M'
)

var (
	// >c1Hc0i4i8i8i4BBHc0
	participantFields = []field{fStr16, fInt32, fInt64, fInt64, fInt32, fBool, fBool, fStr16}
	// >c1Hc0Hc0I4Hc0Hc0Hc0Hc0Hc0I4c0i8Hc0i8
	cfgFields = []field{fStr16, fStr16, fUint32, fStr16, fStr16, fStr16, fStr16, fStr16, fStr32, fInt64, fStr16,
		fInt64}
	// >c1Hc0i8i8Hc0i8i8i8i8i8i8i4i8I4c0
	stFields = []field{fStr16, fInt64, fOpt64, fStr16, fOpt64, fOpt64, fOpt64, fInt64, fInt64, fInt64, fInt32,
		fOpt64, fGroups}
	// >c1i8i8Hc0Hc0i8i8i8i8I4c0
	eventFields = []field{fInt64, fInt64, fStr16, fStr16, fOpt64, fOpt64, fOpt64, fInt64, fStr32}
	// >c1c1i8i8i8i8I4I4HI4: these, then the lengths and count message reads
	messageFields = []field{fKind, fInt64, fInt64, fInt64, fInt64}
)

// participantFixed is the bytes of a participant between its id and its
// group: index i4, total and used i8, cycles i4, the two booleans.
const participantFixed = 4 + 8 + 8 + 4 + 1 + 1

// layout returns the fields after tag, and how many slots they fill; nil
// for a byte that is no tag.
func layout(tag byte) ([]field, int) {
	switch tag {
	case tagParticipant:
		return participantFields, pGroup + 1
	case tagCfg:
		return cfgFields, cfgLife + 1
	case tagSt:
		return stFields, stGroups + 1
	case tagEvent:
		return eventFields, len(eventFields)
	case tagMessage:
		return messageFields, mParts + 1
	}
	return nil, 0
}

// isTag tells whether c opens a revision-4 value.
func isTag(c byte) bool {
	fields, _ := layout(c)
	return fields != nil
}

// unpackBinary decodes a revision-4 value, all of b, into its slot array.
// The layout asked for is the one of slots slots (no two layouts have the
// same number), and b's tag must be its tag. Every length is checked
// against what is left before anything is sliced or allocated. The string
// slots are cut from one copy of b (one allocation, not one a slot; a
// slot kept keeps that copy), and a message is copied once, so its []byte
// slots (capped at their length) share no memory with b nor each other.
func unpackBinary(b []byte, slots int) ([]any, error) {
	if len(b) == 0 {
		return nil, errPacked
	}
	fields, n := layout(b[0])
	if fields == nil || n != slots {
		return nil, errPacked
	}
	r := binReader{b: b, i: 1}
	if b[0] == tagMessage {
		r.b = bytes.Clone(b)
	} else {
		r.s = string(b)
	}
	v := make([]any, 0, n)
	for _, f := range fields {
		var ok bool
		if v, ok = r.field(f, v); !ok {
			return nil, errPacked
		}
	}
	if b[0] == tagMessage {
		var ok bool
		if v, ok = r.message(v); !ok {
			return nil, errPacked
		}
	}
	if r.i != len(b) {
		return nil, errPacked
	}
	return v, nil
}

type binReader struct {
	b []byte
	s string // b as a string, if set: what string slots are cut from
	i int
}

// text is the string of p, the bytes take has just sliced off.
func (r *binReader) text(p []byte) string {
	if r.s == "" {
		return string(p)
	}
	return r.s[r.i-len(p) : r.i]
}

// str reads a chunk (see chunk) as a string.
func (r *binReader) str(w int) (string, bool) {
	p, ok := r.chunk(w)
	if !ok {
		return "", false
	}
	return r.text(p), true
}

func (r *binReader) left() int { return len(r.b) - r.i }

// take slices off the next n bytes (n checked against what is left).
func (r *binReader) take(n uint64) ([]byte, bool) {
	if n > uint64(r.left()) {
		return nil, false
	}
	s := r.b[r.i : r.i+int(n) : r.i+int(n)]
	r.i += int(n)
	return s, true
}

func (r *binReader) u8() (byte, bool) {
	s, ok := r.take(1)
	if !ok {
		return 0, false
	}
	return s[0], true
}

func (r *binReader) u16() (uint64, bool) {
	s, ok := r.take(2)
	if !ok {
		return 0, false
	}
	return uint64(binary.BigEndian.Uint16(s)), true
}

func (r *binReader) u32() (uint64, bool) {
	s, ok := r.take(4)
	if !ok {
		return 0, false
	}
	return uint64(binary.BigEndian.Uint32(s)), true
}

func (r *binReader) i64() (int64, bool) {
	s, ok := r.take(8)
	if !ok {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(s)), true
}

// chunk reads a length of w bytes (2 or 4), then that many bytes.
func (r *binReader) chunk(w int) ([]byte, bool) {
	var n uint64
	var ok bool
	if w == 2 {
		n, ok = r.u16()
	} else {
		n, ok = r.u32()
	}
	if !ok {
		return nil, false
	}
	return r.take(n)
}

// field appends the slot (or slots) of f to v.
func (r *binReader) field(f field, v []any) ([]any, bool) {
	switch f {
	case fStr16, fStr32:
		w := 2
		if f == fStr32 {
			w = 4
		}
		s, ok := r.str(w)
		return append(v, s), ok
	case fInt32, fUint32:
		n, ok := r.u32()
		if !ok {
			return nil, false
		}
		if f == fInt32 {
			return append(v, int64(int32(uint32(n)))), true
		}
		return append(v, int64(n)), true
	case fInt64, fOpt64:
		n, ok := r.i64()
		switch {
		case !ok, n == none && f == fInt64:
			return nil, false
		case n == none:
			return append(v, ""), true
		}
		return append(v, n), true
	case fBool:
		c, ok := r.u8()
		if !ok || c > 1 {
			return nil, false
		}
		return append(v, c == 1), true
	case fKind:
		c, ok := r.u8()
		switch {
		case ok && c == 'f':
			return append(v, "f"), true
		case ok && c == 'd':
			return append(v, "d"), true
		}
		return nil, false
	case fGroups:
		s, ok := r.chunk(4)
		if !ok {
			return nil, false
		}
		groups, ok := unpackGroups(binReader{b: s, s: r.text(s)})
		return append(v, groups), ok
	}
	return nil, false
}

// unpackGroups reads st's group banks: (group id, bank) entries that fill
// r exactly, each group once.
func unpackGroups(r binReader) (map[string]any, bool) {
	groups := make(map[string]any)
	for r.left() > 0 {
		id, ok := r.str(2)
		if !ok {
			return nil, false
		}
		bank, ok := r.i64()
		if !ok || bank == none {
			return nil, false
		}
		if _, dup := groups[id]; dup {
			return nil, false
		}
		groups[id] = bank
	}
	return groups, true
}

// noPositions is a whole state's positions slot, boxed once.
var noPositions any = []any{}

// message reads the rest of a message after its head's numbers (lua/README.md
// "Packed messages"): the lengths of expired_id, cfg and st and the count;
// the positions (kind d); those three values; then count participants of
// layout P back to back, each as long as its own lengths say. Every count
// is checked against what is left before a slice of that size is made.
func (r *binReader) message(v []any) ([]any, bool) {
	cfgLen, ok1 := r.u32()
	stLen, ok2 := r.u32()
	expiredLen, ok3 := r.u16()
	count, ok4 := r.u32()
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, false
	}
	positions := noPositions
	if v[mKind] == "d" {
		if count > uint64(r.left())/4 {
			return nil, false
		}
		pos := make([]any, count)
		for i := range pos {
			p, _ := r.u32()
			pos[i] = int64(p)
		}
		positions = pos
	}
	expired, ok1 := r.take(expiredLen)
	cfg, ok2 := r.take(cfgLen)
	st, ok3 := r.take(stLen)
	// a participant takes at least its tag, two lengths and the fixed slots
	if !ok1 || !ok2 || !ok3 || count > uint64(r.left())/(1+2+participantFixed+2) {
		return nil, false
	}
	parts := make([]any, count)
	for i := range parts {
		from := r.i
		tag, ok := r.u8()
		if !ok || tag != tagParticipant {
			return nil, false
		}
		if _, ok := r.chunk(2); !ok {
			return nil, false
		}
		if _, ok := r.take(participantFixed); !ok {
			return nil, false
		}
		if _, ok := r.chunk(2); !ok {
			return nil, false
		}
		parts[i] = r.b[from:r.i:r.i]
	}
	return append(v, cfg, st, string(expired), positions, parts), true
}
