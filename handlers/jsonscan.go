package handlers

import (
	"bytes"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
)

// scanJSON reads body once, and is the only decode of its top level: it
// refuses malformed JSON, and a key named twice in one object at any depth
// (a decoder would keep the last one silently), naming the duplicate by
// its dotted path, such as participants.0.participant_id. When body is an
// object, top holds its members (values as raw JSON, sharing body's
// bytes); otherwise top is nil. Beyond top's keys, the scan allocates
// nothing for objects of up to 8 keys, such as a switch's.
func scanJSON(body []byte) (top map[string]json.RawMessage, err error) {
	s := scanner{b: body}
	s.ws()
	err = s.value(0)
	if err == nil {
		if s.ws(); s.i < len(s.b) {
			err = errMalformed
		}
	}
	switch e := err.(type) {
	case nil:
		return s.top, nil
	case *dupKey:
		segs := make([]string, len(e.segs))
		for i, seg := range e.segs {
			segs[len(segs)-1-i] = seg
		}
		return nil, invalid(strings.Join(segs, "."), "Duplicate key '"+e.segs[0]+"': name each key once")
	}
	return nil, invalid("body", "Malformed JSON at byte "+strconv.Itoa(min(s.i, len(s.b))))
}

// maxDepth bounds nesting, so a body of a million '[' cannot exhaust the stack.
const maxDepth = 128

type scanner struct {
	b   []byte
	i   int
	top map[string]json.RawMessage // the members of a top-level object
}

type scanError string

func (e scanError) Error() string { return string(e) }

const errMalformed = scanError("malformed JSON")

// dupKey is a key named twice; segs is its path, innermost first (each
// enclosing level appends its own segment as the error travels out).
type dupKey struct{ segs []string }

func (e *dupKey) Error() string { return "duplicate key " + e.segs[0] }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) || depth > maxDepth {
		return errMalformed
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return errMalformed
}

func (s *scanner) object(depth int) error {
	s.i++ // {
	if depth == 0 {
		s.top = make(map[string]json.RawMessage, 4)
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var small [8][]byte
	seen := small[:0]
	var many map[string]bool // past 16 keys, so a huge object stays linear
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errMalformed
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(s.b[s.i-len(key)-2:s.i], &k) != nil {
				return errMalformed
			}
			key = []byte(k)
		}
		dup := false
		if many != nil {
			dup = many[string(key)]
			many[string(key)] = true
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			if seen = append(seen, key); len(seen) > 16 {
				many = make(map[string]bool, 2*len(seen))
				for _, k := range seen {
					many[string(k)] = true
				}
			}
		}
		if dup {
			return &dupKey{segs: []string{string(key)}}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errMalformed
		}
		s.i++
		s.ws()
		start := s.i
		if err := s.value(depth + 1); err != nil {
			return under(err, string(key))
		}
		if depth == 0 {
			s.top[string(key)] = s.b[start:s.i]
		}
		if done, err := s.after('}'); done || err != nil {
			return err
		}
	}
}

func (s *scanner) array(depth int) error {
	s.i++ // [
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		s.ws()
		if err := s.value(depth + 1); err != nil {
			return under(err, strconv.Itoa(n))
		}
		if done, err := s.after(']'); done || err != nil {
			return err
		}
	}
}

// after reads what follows a member or element: a comma (more to come)
// or the container's closing byte (done).
func (s *scanner) after(closing byte) (done bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, errMalformed
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return false, nil
	case closing:
		s.i++
		return true, nil
	}
	return false, errMalformed
}

// under adds the path segment seg to a duplicate key found inside it.
func under(err error, seg string) error {
	if d, ok := err.(*dupKey); ok {
		d.segs = append(d.segs, seg)
	}
	return err
}

// str reads a string and returns its raw content between the quotes.
func (s *scanner) str() ([]byte, error) {
	s.i++ // "
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c >= 0x20 && c != '"' && c != '\\' {
			s.i++ // the common case first: one test per plain byte
			continue
		}
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, errMalformed
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, errMalformed
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, errMalformed
					}
				}
				s.i += 6
			default:
				return nil, errMalformed
			}
		default: // a control character
			return nil, errMalformed
		}
	}
	return nil, errMalformed
}

func (s *scanner) lit(word string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return errMalformed
	}
	s.i += len(word)
	return nil
}

// number reads -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?.
func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return errMalformed
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errMalformed
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errMalformed
		}
	}
	return nil
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}
