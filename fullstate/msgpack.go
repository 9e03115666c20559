package fullstate

import (
	"math"
)

// maxDepth bounds the nesting of a packed value: the scripts' deepest is a
// message's list of participants, or st's map of group banks, at 2.
const maxDepth = 4

// unpackMsgpack decodes one MessagePack value, all of b, into the loose
// values the renderers read: int64 (uint64 past its range), float64,
// string, bool, nil, []any and map[string]any. It is written for what
// cmsgpack packs, so nothing is decoded through reflection, and it checks
// every length against what is left of b before it allocates and nests at
// most maxDepth deep: a corrupt value is an error, never an allocation it
// claims nor a recursion as deep as it likes.
func unpackMsgpack(b []byte) (any, error) {
	r := reader{b: b}
	v, err := r.value(maxDepth)
	if err == nil && r.i != len(b) {
		err = errPacked
	}
	return v, err
}

type reader struct {
	b []byte
	i int
}

func (r *reader) take(n int) ([]byte, bool) {
	if n < 0 || n > len(r.b)-r.i {
		return nil, false
	}
	s := r.b[r.i : r.i+n]
	r.i += n
	return s, true
}

// uint reads a big-endian unsigned integer of w bytes.
func (r *reader) uint(w int) (uint64, bool) {
	s, ok := r.take(w)
	var n uint64
	for _, c := range s {
		n = n<<8 | uint64(c)
	}
	return n, ok
}

func (r *reader) value(depth int) (any, error) {
	s, ok := r.take(1)
	if !ok {
		return nil, errPacked
	}
	c := s[0]
	switch {
	case c <= 0x7f: // positive fixint
		return int64(c), nil
	case c >= 0xe0: // negative fixint
		return int64(int8(c)), nil
	case c&0xe0 == 0xa0: // fixstr
		return r.str(uint64(c & 0x1f))
	case c&0xf0 == 0x90: // fixarray
		return r.array(uint64(c&0x0f), depth)
	case c&0xf0 == 0x80: // fixmap
		return r.dict(uint64(c&0x0f), depth)
	}
	var n uint64
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2, 0xc3:
		return c == 0xc3, nil
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8..64
		if n, ok = r.uint(1 << (c - 0xcc)); ok {
			if n > math.MaxInt64 {
				return n, nil
			}
			return int64(n), nil
		}
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8..64
		w := 1 << (c - 0xd0)
		if n, ok = r.uint(w); ok {
			shift := 64 - 8*w // sign-extend
			return int64(n<<shift) >> shift, nil
		}
	case 0xca:
		if n, ok = r.uint(4); ok {
			return float64(math.Float32frombits(uint32(n))), nil
		}
	case 0xcb:
		if n, ok = r.uint(8); ok {
			return math.Float64frombits(n), nil
		}
	case 0xd9, 0xda, 0xdb: // str 8, 16, 32
		if n, ok = r.uint(1 << (c - 0xd9)); ok {
			return r.str(n)
		}
	case 0xc4, 0xc5, 0xc6: // bin 8, 16, 32 (cmsgpack writes none; read as text)
		if n, ok = r.uint(1 << (c - 0xc4)); ok {
			return r.str(n)
		}
	case 0xdc, 0xdd: // array 16, 32
		if n, ok = r.uint(2 << (c - 0xdc)); ok {
			return r.array(n, depth)
		}
	case 0xde, 0xdf: // map 16, 32
		if n, ok = r.uint(2 << (c - 0xde)); ok {
			return r.dict(n, depth)
		}
	}
	return nil, errPacked // truncated, or an extension type the scripts never write
}

func (r *reader) str(n uint64) (any, error) {
	if n > uint64(len(r.b)-r.i) {
		return nil, errPacked
	}
	s, _ := r.take(int(n))
	return string(s), nil
}

// array reads n values; each takes at least a byte, so n is checked
// against what is left before the slice is made.
func (r *reader) array(n uint64, depth int) (any, error) {
	if depth == 0 || n > uint64(len(r.b)-r.i) {
		return nil, errPacked
	}
	out := make([]any, n)
	for i := range out {
		v, err := r.value(depth - 1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// dict reads n pairs with string keys (st's group banks, by group id).
func (r *reader) dict(n uint64, depth int) (any, error) {
	if depth == 0 || n > uint64(len(r.b)-r.i)/2 {
		return nil, errPacked
	}
	out := make(map[string]any, n)
	for range n {
		k, err := r.value(depth - 1)
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, errPacked
		}
		if out[key], err = r.value(depth - 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}
