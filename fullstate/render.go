package fullstate

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
)

// The slots of the meta hash's packed arrays, in order (lua/README.md "The
// meta hash"; CFG and ST in meta.lua).
const (
	cfgID = iota
	cfgMode
	cfgN
	cfgTotal
	cfgPerCycle
	cfgIncr
	cfgMax
	cfgAuto
	cfgMeta
	cfgCreatedAt
	cfgWarn
	cfgLife
)

const (
	stStatus = iota
	stVersion
	stActive
	stActiveID
	stCycleAt
	stStartedAt
	stCompletedAt
	stUpdatedAt
	stTurn
	stUsed
	stWarned
	stBank
	stGroups
)

var errPacked = errors.New("fullstate: malformed packed array")

// UnpackArray decodes a stored or published value into its slot array of
// at least slots values, whatever revision wrote it; the first byte tells
// which: a revision-4 tag (binary.go: the layout of exactly slots values,
// read strictly), '[' for JSON (the embedded Redis packs the arrays with
// cjson), anything else MessagePack (revision 3, cmsgpack). A []byte slot
// of a revision-4 message shares no memory with b.
func UnpackArray(b []byte, slots int) ([]any, error) {
	if len(b) > 0 && isTag(b[0]) {
		return unpackBinary(b, slots)
	}
	var v []any
	if len(b) > 0 && b[0] == '[' {
		if json.Unmarshal(b, &v) != nil {
			return nil, errPacked
		}
	} else {
		x, err := unpackMsgpack(b)
		if err != nil {
			return nil, err
		}
		v, _ = x.([]any)
	}
	if len(v) < slots {
		return nil, errPacked
	}
	return v, nil
}

// RenderHead writes the state without "participants", as getSession-2
// replies it (encoding.lua's json_head), from the packed cfg and st and the
// Redis time of the read or transition; expired ("" for none) names the
// participant whose ending turn ran out. The same bytes, so a state Go
// renders and one Redis renders never differ.
func RenderHead(cfg, st []byte, nowMS int64, expired string) ([]byte, error) {
	c, err := UnpackArray(cfg, cfgLife+1)
	if err != nil {
		return nil, err
	}
	return renderHead(c, st, nowMS, expired)
}

// renderHead is RenderHead of a cfg already unpacked.
func renderHead(c []any, st []byte, nowMS int64, expired string) ([]byte, error) {
	s, err := UnpackArray(st, stGroups+1)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 640)
	out = append(out, `{"session_id":"`...)
	out = appendText(out, c[cfgID])
	out = append(out, `","sync_mode":"`...)
	out = appendText(out, c[cfgMode])
	out = append(out, `","status":"`...)
	out = appendText(out, s[stStatus])
	out = append(out, `","version":`...)
	out = appendText(out, s[stVersion])
	out = append(out, `,"life":`...)
	out = appendText(out, c[cfgLife])
	out = append(out, `,"active_participant_id":`...)
	// ids are spliced unescaped, as the scripts splice them: they are UUIDs
	if id := text(s[stActiveID]); id != "" {
		out = append(append(append(out, '"'), id...), '"')
	} else {
		out = append(out, "null"...)
	}
	out = append(out, `,"total_time_ms":`...)
	out = appendText(out, c[cfgTotal])
	out = append(out, `,"time_per_cycle_ms":`...)
	out = appendOrNull(out, c[cfgPerCycle])
	if v := text(c[cfgIncr]); v != "" {
		out = append(append(out, `,"increment_ms":`...), v...)
	}
	if v := text(c[cfgMax]); v != "" {
		out = append(append(out, `,"max_time_ms":`...), v...)
	}
	if v := text(c[cfgMeta]); v != "" {
		out = append(append(out, `,"metadata":`...), v...)
	}
	if v := text(c[cfgWarn]); v != "" {
		out = append(append(append(out, `,"warnings_ms":[`...), v...), ']')
	}
	mode := text(c[cfgMode])
	if bank, ok := integer(s[stBank]); mode == "global" && ok {
		out = strconv.AppendInt(append(out, `,"time_remaining_ms":`...), max(bank, 0), 10)
	}
	if mode == "per_group" {
		groups, _ := s[stGroups].(map[string]any)
		ids := make([]string, 0, len(groups))
		for g := range groups {
			ids = append(ids, g)
		}
		slices.Sort(ids)
		out = append(out, `,"group_remaining_ms":{`...)
		for i, g := range ids {
			if i > 0 {
				out = append(out, ',')
			}
			bank, _ := integer(groups[g])
			out = strconv.AppendInt(append(append(append(out, '"'), g...), `":`...), max(bank, 0), 10)
		}
		out = append(out, '}')
	}
	out = append(out, `,"auto_advance":`...)
	out = strconv.AppendBool(out, text(c[cfgAuto]) == "1")
	out = append(out, `,"cycle_started_at":`...)
	out = appendISOOrNull(out, s[stCycleAt])
	out = append(out, `,"session_started_at":`...)
	out = appendISOOrNull(out, s[stStartedAt])
	out = append(out, `,"session_completed_at":`...)
	out = appendISOOrNull(out, s[stCompletedAt])
	out = append(out, `,"created_at":`...)
	out = appendISOOrNull(out, c[cfgCreatedAt])
	out = append(out, `,"updated_at":`...)
	out = appendISOOrNull(out, s[stUpdatedAt])
	out = strconv.AppendInt(append(out, `,"server_time_ms":`...), nowMS, 10)
	if expired != "" {
		out = append(append(append(out, `,"expired_participant_id":"`...), expired...), '"')
	}
	return append(out, '}'), nil
}

// The slots of a packed participant (lua/README.md "Participants").
const (
	pID = iota
	pIndex
	pTotal
	pUsed
	pCycles
	pActive
	pExpired
	pGroup
)

// RenderParticipant writes a stored participant as v1 JSON, as
// getSession-2 does (encoding.lua's json_p): a fragment the revision-2
// scripts stored is JSON already and is returned as it is.
func RenderParticipant(frag []byte) ([]byte, error) {
	if len(frag) > 0 && frag[0] == '{' {
		return frag, nil
	}
	p, err := UnpackArray(frag, pGroup+1)
	if err != nil {
		return nil, err
	}
	n, ok := integers(p, pIndex, pTotal, pUsed, pCycles)
	active, ok1 := p[pActive].(bool)
	expired, ok2 := p[pExpired].(bool)
	if !ok || !ok1 || !ok2 {
		return nil, errPacked
	}
	out := make([]byte, 0, 256)
	out = append(append(append(out, `{"participant_id":"`...), text(p[pID])...), `","participant_index":`...)
	out = strconv.AppendInt(out, n[0], 10)
	out = strconv.AppendInt(append(out, `,"total_time_ms":`...), n[1], 10)
	out = strconv.AppendInt(append(out, `,"time_used_ms":`...), n[2], 10)
	out = strconv.AppendInt(append(out, `,"time_remaining_ms":`...), max(n[1], 0), 10)
	out = strconv.AppendInt(append(out, `,"cycle_count":`...), n[3], 10)
	out = strconv.AppendBool(append(out, `,"is_active":`...), active)
	out = strconv.AppendBool(append(out, `,"has_expired":`...), expired)
	if g := text(p[pGroup]); g != "" {
		out = append(append(append(out, `,"group_id":"`...), g...), '"')
	}
	return append(out, '}'), nil
}

// text is a packed slot as the scripts splice it into JSON: a string as
// it is, an integer in decimal ("" for anything else).
func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if n, ok := integer(v); ok {
		return strconv.FormatInt(n, 10)
	}
	return ""
}

func appendText(out []byte, v any) []byte { return append(out, text(v)...) }

// appendOrNull writes a slot, or null where it holds "" (none).
func appendOrNull(out []byte, v any) []byte {
	if t := text(v); t != "" {
		return append(out, t...)
	}
	return append(out, "null"...)
}

// appendISOOrNull writes an epoch-ms slot as a quoted ISO 8601 instant
// with milliseconds, or null where it holds "".
func appendISOOrNull(out []byte, v any) []byte {
	ms, ok := integer(v)
	if !ok {
		return append(out, "null"...)
	}
	out = append(out, '"')
	out = time.UnixMilli(ms).UTC().AppendFormat(out, "2006-01-02T15:04:05.000Z")
	return append(out, '"')
}

// integers reads the integer slots of v, in the order given.
func integers(v []any, slots ...int) ([]int64, bool) {
	out := make([]int64, len(slots))
	for i, slot := range slots {
		n, ok := integer(v[slot])
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// integer reads an integer slot: a number as loose MessagePack or JSON
// decoding gives it, or decimal text.
func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float64:
		return int64(n), n == float64(int64(n))
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}
