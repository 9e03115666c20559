package engine

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// slotsLua reads the slots of a session's stored values (lua/README.md
// "Layouts"), for the scripts below that rewrite them in older layouts.
const slotsLua = `
local NONE = -2 ^ 63
local function slots(fmt, v, drop)
  local t = { struct.unpack(fmt, v) }
  table.remove(t, 1) -- the tag
  t[#t] = nil -- where struct.unpack stopped
  return t
end
local function cfg_slots(v) return slots('>c1Hc0Hc0I4Hc0Hc0Hc0Hc0Hc0I4c0i8Hc0i8', v) end
local function st_slots(v)
  local s = slots('>c1Hc0i8i8Hc0i8i8i8i8i8i8i4i8I4c0', v)
  for _, i in ipairs({ 3, 5, 6, 7, 12 }) do if s[i] == NONE then s[i] = '' end end
  local groups, at = {}, 1
  while at <= #s[13] do
    local g, b
    g, b, at = struct.unpack('>Hc0i8', s[13], at)
    groups[g] = b
  end
  s[13] = groups
  return s
end
local function part_slots(v)
  local p = slots('>c1Hc0i4i8i8i4BBHc0', v)
  p[6], p[7] = p[6] == 1, p[7] == 1
  return p
end
`

// storeUnpacked rewrites a session's cfg (KEYS[1], the meta hash) and st
// (KEYS[2], the parts hash, field ARGV[1]: the participant count) as the
// scripts before the packing stored them:
// one field each in the meta hash, per_group banks as g:<group_id> fields,
// numbers formatted as they wrote them.
const storeUnpacked = slotsLua + `
local c, s = cfg_slots(redis.call('HGET', KEYS[1], 'cfg')), st_slots(redis.call('HGET', KEYS[2], ARGV[1]))
local function str(x) if type(x) == 'number' then return string.format('%d', x) end return x end
local flat = {}
for i, f in ipairs({ 'id', 'mode', 'n', 'total', 'per_cycle', 'incr', 'max', 'auto', 'meta', 'created_at', 'warn', 'life' }) do
  flat[#flat + 1] = f; flat[#flat + 1] = str(c[i])
end
for i, f in ipairs({ 'status', 'version', 'active', 'active_id', 'cycle_at', 'started_at', 'completed_at', 'updated_at',
  'turn', 'used', 'warned', 'bank' }) do
  if s[i] ~= '' or f ~= 'bank' then flat[#flat + 1] = f; flat[#flat + 1] = str(s[i]) end
end
for g, b in pairs(s[13]) do flat[#flat + 1] = 'g:' .. g; flat[#flat + 1] = str(b) end
redis.call('HDEL', KEYS[1], 'cfg')
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], unpack(flat))
return #flat / 2`

// storeMsgpackMeta rewrites a session's cfg and st as revisions 2 and 3
// stored them: MessagePack arrays of the same slots ("" for none), both in
// the meta hash (KEYS[1]; KEYS[2] is the parts hash, ARGV[1] the
// participant count).
const storeMsgpackMeta = slotsLua + `
local c, s = redis.call('HGET', KEYS[1], 'cfg'), redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'cfg', cmsgpack.pack(cfg_slots(c)), 'st', cmsgpack.pack(st_slots(s)))
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`

// storeJSONParts rewrites a session's participants as the revision-2
// scripts stored them: v1 JSON objects.
const storeJSONParts = slotsLua + `
for i = 0, tonumber(ARGV[1]) - 1 do
  local a = part_slots(redis.call('HGET', KEYS[1], tostring(i)))
  local g = ''
  if a[8] ~= '' then g = ',"group_id":"' .. a[8] .. '"' end
  redis.call('HSET', KEYS[1], tostring(i), string.format('{"participant_id":"%s","participant_index":%d,' ..
    '"total_time_ms":%d,"time_used_ms":%d,"time_remaining_ms":%d,"cycle_count":%d,"is_active":%s,' ..
    '"has_expired":%s%s}', a[1], a[2], a[3], a[4], math.max(a[3], 0), a[5], tostring(a[6]), tostring(a[7]), g))
end
return 1`

// storeMsgpackParts rewrites a session's participants as revision 3
// stored them: MessagePack arrays.
const storeMsgpackParts = slotsLua + `
for i = 0, tonumber(ARGV[1]) - 1 do
  redis.call('HSET', KEYS[1], tostring(i), cmsgpack.pack(part_slots(redis.call('HGET', KEYS[1], tostring(i)))))
end
return 1`

// TestUnpackedSessions: a session stored by older scripts (running through
// a rolling upgrade) reads the same, and its next transition stores the
// whole session in revision 4's layouts, with the TTL its status asks for.
// Older is the meta hash field by field with JSON participants (before the
// packing), MessagePack meta with JSON participants (the revision-2
// scripts), or MessagePack throughout (revision 3).
func TestUnpackedSessions(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	grouped := func(c *session.Config) {
		g := uuid.NewString()
		for i := range c.Participants {
			c.Participants[i].GroupID = g
		}
	}
	type layout struct {
		name  string
		store []string // the scripts that rewrite the session
	}
	type op struct {
		name   string
		mode   string
		adjust func(*session.Config)
		start  bool
		op     func(id string, version int64) ([]byte, error)
		ttl    bool // the meta key expires after op
	}
	var cases []struct {
		layout
		op
	}
	for _, tc := range []op{
		{"pending per_participant, start", session.ModePerParticipant, nil, false,
			func(id string, v int64) ([]byte, error) { return s.Start(ctx, id, v) }, false},
		{"pending, complete", session.ModeCountUp, nil, false,
			func(id string, v int64) ([]byte, error) { return s.Complete(ctx, id, v) }, true},
		{"running global, switch", session.ModeGlobal, nil, true,
			func(id string, v int64) ([]byte, error) {
				return s.Switch(ctx, id, session.SwitchArgs{ExpectedVersion: v})
			}, false},
		{"running per_group, switch", session.ModePerGroup, grouped, true,
			func(id string, v int64) ([]byte, error) {
				return s.Switch(ctx, id, session.SwitchArgs{ExpectedVersion: v})
			}, false},
		{"running, pause", session.ModePerParticipant, nil, true,
			func(id string, v int64) ([]byte, error) { return s.Pause(ctx, id, v) }, false},
	} {
		for _, l := range []layout{
			{"fields", []string{storeUnpacked, storeJSONParts}},
			{"revision 2", []string{storeMsgpackMeta, storeJSONParts}},
			{"revision 3", []string{storeMsgpackMeta, storeMsgpackParts}},
		} {
			cases = append(cases, struct {
				layout
				op
			}{l, tc})
		}
	}
	for _, tc := range cases {
		t.Run(tc.layout.name+": "+tc.op.name, func(t *testing.T) {
			c := newConfig(t, tc.mode, 3, 60_000)
			if tc.adjust != nil {
				tc.adjust(c)
			}
			c.Metadata = []byte(`{"room":"a"}`)
			c.WarningsMS = []int64{10_000, 5_000}
			mustCreate(t, s, c)
			if tc.start {
				if _, err := s.Start(ctx, c.ID, 0); err != nil {
					t.Fatal(err)
				}
			}
			meta := keyspace.For(c.ID).Meta
			before, err := s.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			ttl := rdb.PTTL(ctx, meta).Val()
			parts := keyspace.For(c.ID).Parts
			for _, sc := range tc.store {
				keys := []string{meta, parts}
				if sc == storeJSONParts || sc == storeMsgpackParts {
					keys = []string{parts}
				}
				if err := rdb.Eval(ctx, sc, keys, len(c.Participants)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if n := rdb.HLen(ctx, meta).Val(); tc.layout.name == "fields" && n < 20 {
				t.Fatalf("unpacked meta has %d fields", n)
			}
			if f := rdb.HGet(ctx, parts, "0").Val(); f[0] == 'P' {
				t.Fatalf("participant 0 stored as %q, want an older layout", f)
			}
			n := strconv.Itoa(len(c.Participants))
			if rdb.HExists(ctx, parts, n).Val() {
				t.Fatal("st is still in the parts hash, where revision 4 keeps it")
			}
			if rdb.PTTL(ctx, meta).Val() > ttl {
				t.Fatal("unpacking moved the TTL")
			}
			unpacked, err := s.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if maskServerTime(unpacked) != maskServerTime(before) {
				t.Fatalf("read unpacked:\n%s\nwant\n%s", unpacked, before)
			}

			got, err := tc.op.op(c.ID, decode[State](t, before).Version)
			if err != nil {
				t.Fatal(err)
			}
			if v := decode[State](t, got).Version; v != decode[State](t, before).Version+1 {
				t.Fatalf("version %d after the transition", v)
			}
			if keys := rdb.HKeys(ctx, meta).Val(); len(keys) != 1 || keys[0] != "cfg" {
				t.Fatalf("meta fields after the transition: %v, want cfg", keys)
			}
			if expires := rdb.PTTL(ctx, meta).Val() > 0; expires != tc.ttl {
				t.Fatalf("meta TTL %v after the transition", rdb.PTTL(ctx, meta).Val())
			}
			after, err := s.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if maskServerTime(after) != maskServerTime(got) {
				t.Fatalf("read after the transition:\n%s\nwant its reply\n%s", after, got)
			}
			// the transition stored the whole session in revision 4's
			// layouts: cfg, st and every participant
			if cfg, st := rdb.HGet(ctx, meta, "cfg").Val(), rdb.HGet(ctx, parts, n).Val(); cfg[0] != 'C' || st[0] != 'S' {
				t.Fatalf("cfg %q and st %q after the transition", cfg, st)
			}
			for pos, f := range rdb.HGetAll(ctx, parts).Val() {
				if !strings.HasPrefix(pos, "g:") && pos != n && f[0] != 'P' {
					t.Fatalf("participant %s after the transition: %q, want layout P", pos, f)
				}
			}
		})
	}
}
