package handlers

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/synckairos/synckairos/session"
)

// The plan's Zod schemas, field for field, with two tightenings: unknown
// keys are rejected (Zod's .strict()) and numbers must be integers, since
// every number here is a count or a duration in ms. Each rule adds a
// FieldError, so one response names every bad field.

const (
	maxParticipants = 1000
	dayMS           = 86_400_000
)

// scanBody runs scanJSON on a body that is not empty (an empty one is
// judged by each parser: optional for switch and the others, an error for
// create).
func scanBody(body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return scanJSON(body)
}

// fields collects the rejections of one request.
type fields struct{ errs []FieldError }

func (f *fields) add(field, msg string) { f.errs = append(f.errs, FieldError{field, msg}) }

func (f *fields) err() error {
	if len(f.errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: f.errs}
}

// jsonType names a raw JSON value's type the way Zod reports it.
func jsonType(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "undefined"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func typeMsg(want string, raw []byte) string {
	return "Expected " + want + ", received " + jsonType(raw)
}

// object decodes raw as a JSON object, adding an error for a non-object or
// for keys outside allowed.
func (f *fields) object(path string, raw []byte, allowed ...string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	if jsonType(raw) == "object" && json.Unmarshal(raw, &m) != nil {
		f.add(orBody(path), "Malformed JSON")
		return nil
	}
	return f.members(path, raw, m, allowed...)
}

// members checks m, the members of raw (nil when raw is not an object),
// against allowed.
func (f *fields) members(path string, raw []byte, m map[string]json.RawMessage, allowed ...string) map[string]json.RawMessage {
	if m == nil {
		f.add(orBody(path), typeMsg("object", raw))
		return nil
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		f.add(orBody(path), "Unrecognized key(s) in object: '"+strings.Join(unknown, "', '")+"'")
	}
	return m
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// str reads a required (or, with opt, optional) string field.
func (f *fields) str(m map[string]json.RawMessage, path, key string, opt bool) (string, bool) {
	raw, ok := m[key]
	if !ok {
		if !opt {
			f.add(join(path, key), "Required")
		}
		return "", false
	}
	var s string
	if jsonType(raw) != "string" || json.Unmarshal(raw, &s) != nil {
		f.add(join(path, key), typeMsg("string", raw))
		return "", false
	}
	return s, true
}

func (f *fields) uuid(m map[string]json.RawMessage, path, key string, opt bool) string {
	s, ok := f.str(m, path, key, opt)
	if !ok {
		return ""
	}
	id, ok := session.NormalizeID(s)
	if !ok {
		f.add(join(path, key), "Invalid uuid")
		return ""
	}
	return id
}

// integer reads a number field that must be a whole number in [lo, hi].
func (f *fields) integer(m map[string]json.RawMessage, path, key string, opt bool, lo, hi int64) (int64, bool) {
	raw, ok := m[key]
	if !ok {
		if !opt {
			f.add(join(path, key), "Required")
		}
		return 0, false
	}
	name := join(path, key)
	if jsonType(raw) != "number" {
		f.add(name, typeMsg("number", raw))
		return 0, false
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	switch {
	case err != nil:
		f.add(name, typeMsg("number", raw))
	case v != math.Trunc(v) || math.Abs(v) > 1<<53:
		f.add(name, "Expected integer, received float")
	case v < float64(lo):
		f.add(name, "Number must be greater than or equal to "+strconv.FormatInt(lo, 10))
	case v > float64(hi):
		f.add(name, "Number must be less than or equal to "+strconv.FormatInt(hi, 10))
	default:
		return int64(v), true
	}
	return 0, false
}

func optional(v int64, ok bool) *int64 {
	if !ok {
		return nil
	}
	return &v
}

// ParseCreate validates a POST /v1/sessions body (CreateSessionSchema,
// plus the optional session-level total_time_ms).
func ParseCreate(body []byte) (*session.Config, error) {
	top, err := scanBody(body)
	if err != nil {
		return nil, err
	}
	var f fields
	m := f.members("", body, top, "session_id", "sync_mode", "participants", "total_time_ms",
		"time_per_cycle_ms", "increment_ms", "max_time_ms", "auto_advance", "metadata", "warnings_ms")
	if m == nil {
		return nil, f.err()
	}
	c := &session.Config{}
	c.ID = f.uuid(m, "", "session_id", false)
	if mode, ok := f.str(m, "", "sync_mode", false); ok {
		if !slices.Contains(session.Modes, mode) {
			f.add("sync_mode", "Invalid enum value. Expected '"+strings.Join(session.Modes, "' | '")+"', received '"+mode+"'")
		}
		c.SyncMode = mode
	}
	c.TotalTimeMS = optional(f.integer(m, "", "total_time_ms", true, 1000, maxParticipants*dayMS))
	c.TimePerCycleMS = optional(f.integer(m, "", "time_per_cycle_ms", true, 1000, dayMS))
	c.IncrementMS = optional(f.integer(m, "", "increment_ms", true, 0, 60_000))
	c.MaxTimeMS = optional(f.integer(m, "", "max_time_ms", true, 1000, dayMS))
	if raw, ok := m["auto_advance"]; ok {
		switch string(bytes.TrimSpace(raw)) {
		case "true":
			c.AutoAdvance = true
		case "false":
		default:
			f.add("auto_advance", typeMsg("boolean", raw))
		}
	}
	if raw, ok := m["metadata"]; ok {
		if jsonType(raw) != "object" || !json.Valid(raw) {
			f.add("metadata", typeMsg("object", raw))
		} else {
			c.Metadata = bytes.Clone(bytes.TrimSpace(raw)) // not body's bytes: the config may outlive the request
		}
	}
	c.Participants = f.participants(m)
	c.WarningsMS = f.warnings(m)
	f.modeFields(c)
	return c, f.err()
}

// warnings reads the optional warnings_ms: up to 5 distinct thresholds
// (ms left in a turn) at which TIME_WARNING goes out.
func (f *fields) warnings(m map[string]json.RawMessage) []int64 {
	raw, ok := m["warnings_ms"]
	if !ok {
		return nil
	}
	var list []json.RawMessage
	if jsonType(raw) != "array" || json.Unmarshal(raw, &list) != nil {
		f.add("warnings_ms", typeMsg("array", raw))
		return nil
	}
	if len(list) > 5 {
		f.add("warnings_ms", "Array must contain at most 5 element(s)")
		return nil
	}
	wrap := map[string]json.RawMessage{}
	out := make([]int64, 0, len(list))
	for i, w := range list {
		key := strconv.Itoa(i)
		wrap[key] = w
		v, ok := f.integer(wrap, "warnings_ms", key, false, 100, dayMS)
		if !ok {
			continue
		}
		if slices.Contains(out, v) {
			f.add("warnings_ms."+key, "Duplicate threshold")
			continue
		}
		out = append(out, v)
	}
	return out
}

// modeFields checks what each sync mode needs beyond the schema
// (README.md "Clock modes"): per_cycle a time_per_cycle_ms, global the
// session-level total_time_ms, per_group a group_id on every participant
// and one bank per group (its members' total_time_ms agree).
func (f *fields) modeFields(c *session.Config) {
	switch c.SyncMode {
	case session.ModePerCycle:
		if c.TimePerCycleMS == nil {
			f.add("time_per_cycle_ms", "Required for sync_mode per_cycle")
		}
	case session.ModeGlobal:
		if c.TotalTimeMS == nil {
			f.add("total_time_ms", "Required for sync_mode global")
		}
	case session.ModePerGroup:
		bank := map[string]int{}
		for i, p := range c.Participants {
			path := "participants." + strconv.Itoa(i)
			if p.GroupID == "" {
				f.add(path+".group_id", "Required for sync_mode per_group")
				continue
			}
			if j, ok := bank[p.GroupID]; !ok {
				bank[p.GroupID] = i
			} else if c.Participants[j].TotalTimeMS != p.TotalTimeMS {
				f.add(path+".total_time_ms", "Members of a group share one bank: must equal participants."+strconv.Itoa(j)+".total_time_ms")
			}
		}
	}
}

func (f *fields) participants(m map[string]json.RawMessage) []session.Participant {
	raw, ok := m["participants"]
	if !ok {
		f.add("participants", "Required")
		return nil
	}
	var list []json.RawMessage
	if jsonType(raw) != "array" || json.Unmarshal(raw, &list) != nil {
		f.add("participants", typeMsg("array", raw))
		return nil
	}
	switch {
	case len(list) < 1:
		f.add("participants", "Array must contain at least 1 element(s)")
	case len(list) > maxParticipants:
		f.add("participants", "Array must contain at most 1000 element(s)")
		return nil
	}
	out := make([]session.Participant, 0, len(list))
	seen := make(map[string]int, len(list))
	byIndex := make(map[int64]int, len(list))
	named := map[int]bool{} // positions already reported as a duplicate index
	for i, praw := range list {
		path := "participants." + strconv.Itoa(i)
		pm := f.object(path, praw, "participant_id", "participant_index", "total_time_ms", "group_id")
		if pm == nil {
			continue
		}
		var p session.Participant
		p.ID = f.uuid(pm, path, "participant_id", false)
		if p.ID != "" {
			if j, dup := seen[p.ID]; dup {
				f.add(path+".participant_id", "Duplicate participant_id (also participants."+strconv.Itoa(j)+")")
			}
			seen[p.ID] = i
		}
		var ok bool
		if p.Index, ok = f.integer(pm, path, "participant_index", false, 0, math.MaxInt32); ok {
			if j, dup := byIndex[p.Index]; !dup {
				byIndex[p.Index] = i
			} else {
				// Rotation follows participant_index: a tie leaves the order
				// to the list's, which is seldom what was meant.
				n := strconv.FormatInt(p.Index, 10)
				other := "participants." + strconv.Itoa(j) + ".participant_index"
				if !named[j] {
					named[j] = true
					f.add(other, "Duplicate participant_index "+n+" (also "+path+".participant_index)")
				}
				f.add(path+".participant_index", "Duplicate participant_index "+n+" (also "+other+")")
			}
		}
		p.TotalTimeMS, _ = f.integer(pm, path, "total_time_ms", false, 1000, dayMS)
		p.GroupID = f.uuid(pm, path, "group_id", true)
		out = append(out, p)
	}
	return out
}

// ParseSwitch validates an optional POST /switch body (SwitchCycleSchema
// plus expected_version and current_participant_id). An empty body is fine.
func ParseSwitch(body []byte, ifMatch []byte) (session.SwitchArgs, error) {
	var a session.SwitchArgs
	top, err := scanBody(body)
	if err != nil {
		return a, err
	}
	var f fields
	if len(bytes.TrimSpace(body)) > 0 {
		m := f.members("", body, top, "next_participant_id", "expected_version", "current_participant_id")
		if m != nil {
			a.NextParticipantID = f.uuid(m, "", "next_participant_id", true)
			a.CurrentParticipantID = f.uuid(m, "", "current_participant_id", true)
			a.ExpectedVersion, _ = f.integer(m, "", "expected_version", true, 1, 1<<53)
		}
	}
	a.ExpectedVersion = f.ifMatch(ifMatch, a.ExpectedVersion)
	return a, f.err()
}

// ParseVersion reads the expected version of start, pause, resume,
// complete and delete: an optional {"expected_version": n} body and/or an
// If-Match header ("n" or n). 0 means unset.
func ParseVersion(body []byte, ifMatch []byte) (int64, error) {
	top, err := scanBody(body)
	if err != nil {
		return 0, err
	}
	var f fields
	var v int64
	if len(bytes.TrimSpace(body)) > 0 {
		if m := f.members("", body, top, "expected_version"); m != nil {
			v, _ = f.integer(m, "", "expected_version", true, 1, 1<<53)
		}
	}
	v = f.ifMatch(ifMatch, v)
	return v, f.err()
}

// ifMatch merges an If-Match version with the body's; both must agree.
func (f *fields) ifMatch(h []byte, body int64) int64 {
	h = bytes.TrimSpace(h)
	if len(h) == 0 {
		return body
	}
	h = bytes.TrimPrefix(h, []byte("W/"))
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	v, err := strconv.ParseInt(string(h), 10, 64)
	switch {
	case err != nil || v < 1:
		f.add("If-Match", "Expected a version number such as \"3\"")
	case body != 0 && body != v:
		f.add("If-Match", "Disagrees with expected_version in the body")
	default:
		return v
	}
	return body
}
