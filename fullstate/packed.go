package fullstate

import (
	"strconv"

	json "github.com/goccy/go-json"
)

// The slots of a packed message (lua/README.md "Packed messages").
const (
	mKind = iota
	mLife
	mVersion
	mBase
	mNow
	mCfg
	mSt
	mExpired
	mPositions
	mParts
)

// decodePacked renders a packed message into a Delta: the head from cfg
// and st, each participant as v1 JSON.
func decodePacked(msg []byte) (*Delta, error) {
	v, err := UnpackArray(msg, mParts+1)
	if err != nil {
		return nil, err
	}
	kind := text(v[mKind])
	if kind != "f" && kind != "d" {
		return nil, errBadDelta
	}
	n, ok := integers(v, mLife, mVersion, mBase, mNow)
	if !ok {
		return nil, errBadDelta
	}
	cfg, st := bytesOf(v[mCfg]), bytesOf(v[mSt])
	c, err := UnpackArray(cfg, cfgLife+1)
	if err != nil {
		return nil, err
	}
	count, ok := integer(c[cfgN])
	if !ok || count < 0 {
		return nil, errBadDelta
	}
	d := &Delta{SessionID: text(c[cfgID]), Life: n[0], Version: n[1], BaseVersion: n[2], Timestamp: n[3],
		Count: int(count), Full: kind == "f"}
	if d.Session, err = renderHead(c, st, d.Timestamp, text(v[mExpired])); err != nil {
		return nil, err
	}
	parts, _ := v[mParts].([]any)
	positions, _ := v[mPositions].([]any) // cjson writes an empty list as {}
	if d.Full && len(parts) != d.Count || !d.Full && len(positions) != len(parts) {
		return nil, errBadDelta
	}
	for _, p := range positions {
		x, ok := integer(p)
		if !ok || x < 0 || x >= count {
			return nil, errBadDelta
		}
		d.Positions = append(d.Positions, int(x))
	}
	d.Participants = make([]json.RawMessage, len(parts))
	for i, p := range parts {
		if d.Participants[i], err = participant(p); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// participant renders one element of a message's parts: packed bytes, or
// (from the embedded Redis, whose messages are JSON) a decoded array or a
// stored JSON object.
func participant(p any) ([]byte, error) {
	switch p := p.(type) {
	case string:
		return RenderParticipant([]byte(p))
	case []byte:
		return RenderParticipant(p)
	}
	return nil, errBadDelta
}

// bytesOf is a packed string slot's bytes.
func bytesOf(v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	return nil
}

// JSON encodes d as the STATE_DELTA message the revision-2 scripts
// published (lua/README.md "Applying a delta"): the audit trail stores it.
func (d *Delta) JSON() []byte {
	out := make([]byte, 0, 256+len(d.Session))
	out = append(out, `{"type":"STATE_DELTA","sessionId":"`...)
	out = append(out, d.SessionID...)
	out = strconv.AppendInt(append(out, `","timestamp":`...), d.Timestamp, 10)
	out = strconv.AppendInt(append(out, `,"version":`...), d.Version, 10)
	out = strconv.AppendInt(append(out, `,"life":`...), d.Life, 10)
	out = strconv.AppendInt(append(out, `,"base_version":`...), d.BaseVersion, 10)
	out = strconv.AppendInt(append(out, `,"participant_count":`...), int64(d.Count), 10)
	out = append(append(out, `,"session":`...), d.Session...)
	out = append(out, `,"positions":[`...)
	for i, p := range d.Positions {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendInt(out, int64(p), 10)
	}
	out = append(out, `],"participants":[`...)
	for i, p := range d.Participants {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return append(out, "]}"...)
}

// StateMessage is a STATE_UPDATE or STATE_SYNC as a client of the
// WebSocket gets it (and as the revision-2 scripts published a small
// session's STATE_UPDATE): {"type","sessionId","timestamp","version","life","state"}.
func StateMessage(typ, id string, ts, life, version int64, state []byte) []byte {
	b := make([]byte, 0, len(state)+128)
	b = append(append(append(b, `{"type":"`...), typ...), `","sessionId":"`...)
	b = strconv.AppendInt(append(append(b, id...), `","timestamp":`...), ts, 10)
	b = strconv.AppendInt(append(b, `,"version":`...), version, 10)
	b = strconv.AppendInt(append(b, `,"life":`...), life, 10)
	return append(append(append(b, `,"state":`...), state...), '}')
}
