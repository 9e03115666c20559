package main

import (
	"bytes"
	"sync"
	"time"
)

// sess is one session under load: who takes part, and when each version
// it reached was asked for, so a client's receipt of version v can be
// matched to the switch that made it.
type sess struct {
	id    string
	parts []string

	mu    sync.Mutex
	base  int64     // version when the clients attached: they expect base+1 first
	sends []sendRec // sends[v-base-1]
	final int64     // highest version any reply reported
}

// sendRec is when a version was due to be sent, and in which repetition
// (-1: warm-up, not measured).
type sendRec struct {
	due int64 // unix ns; 0 = not known yet
	rep int32
}

// noteSend records that version v came from the switch due at due.
func (s *sess) noteSend(v int64, due time.Time, rep int) {
	s.mu.Lock()
	if v > s.final {
		s.final = v
	}
	if i := v - s.base - 1; i >= 0 && i < 1<<24 {
		for int64(len(s.sends)) <= i {
			s.sends = append(s.sends, sendRec{})
		}
		s.sends[i] = sendRec{due: due.UnixNano(), rep: int32(rep)}
	}
	s.mu.Unlock()
}

// sendOf returns the send of version v, if its reply has come back.
func (s *sess) sendOf(v int64) (sendRec, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := v - s.base - 1
	if i < 0 || i >= int64(len(s.sends)) || s.sends[i].due == 0 {
		return sendRec{}, false
	}
	return s.sends[i], true
}

func (s *sess) finalVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.final
}

// versionCheck follows one client's stream of versions: each must be the
// one after the last, starting right after the version at attach time.
type versionCheck struct {
	next     int64 // the version expected next
	missed   int64 // versions skipped over
	reorders int64 // versions that came late or twice
}

func newVersionCheck(base int64) versionCheck { return versionCheck{next: base + 1} }

// see checks version v and returns "" or the kind of fault.
func (c *versionCheck) see(v int64) string {
	switch {
	case v == c.next:
		c.next++
		return ""
	case v > c.next:
		c.missed += v - c.next
		c.next = v + 1
		return "version_gap"
	default:
		c.reorders++
		return "version_reordered"
	}
}

// last returns the last version seen in order.
func (c *versionCheck) last() int64 { return c.next - 1 }

// finish counts the versions up to final that never arrived.
func (c *versionCheck) finish(final int64) int64 {
	if final > c.last() {
		n := final - c.last()
		c.missed += n
		return n
	}
	return 0
}

// Wire parsing. The tool reads two fields of every message and nothing
// else, so it scans instead of decoding: the state's own "version" equals
// the message's, so the first one found is right whichever comes first.
var (
	keyType    = []byte(`"type":"`)
	keyVersion = []byte(`"version":`)
	keyCode    = []byte(`"code":"`)
)

func msgType(b []byte) string { return string(quotedAfter(b, keyType)) }

// quotedAfter returns what stands between key (which ends in a quote) and
// the next quote in b, or nil.
func quotedAfter(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil
	}
	return b[:j]
}

// msgVersion returns the first "version" number in b, or -1.
func msgVersion(b []byte) int64 {
	i := bytes.Index(b, keyVersion)
	if i < 0 {
		return -1
	}
	b = b[i+len(keyVersion):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var v int64
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' && n < 18 {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	if n == 0 {
		return -1
	}
	return v
}

// errCode returns an error body's "code", or "".
func errCode(b []byte) string {
	c := quotedAfter(b, keyCode)
	if len(c) > 64 {
		return ""
	}
	return string(c)
}
