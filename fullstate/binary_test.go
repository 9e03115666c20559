package fullstate

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/synckairos/synckairos/servertest"
)

// encode writes a slot array in the revision-4 layout of tag, as the
// scripts' struct.pack calls do: the inverse of unpackBinary, checked
// against Redis's struct in TestBinaryMatchesRedisStruct. Integers may be
// int or int64; "" in an optional i8 slot is none; st's groups are written
// in the order of their ids.
func encode(t testing.TB, tag byte, slots []any) []byte {
	t.Helper()
	fields, n := layout(tag)
	if len(slots) != n {
		t.Fatalf("layout %c has %d slots, given %d", tag, n, len(slots))
	}
	num := func(v any) int64 {
		switch x := v.(type) {
		case int:
			return int64(x)
		case int64:
			return x
		}
		t.Fatalf("layout %c: %#v is no integer", tag, v)
		return 0
	}
	chunk := func(out []byte, w int, s string) []byte {
		if w == 2 && len(s) > 0xffff || uint64(len(s)) > 0xffffffff {
			t.Fatalf("layout %c: %d bytes do not fit a length of %d bytes", tag, len(s), w)
		}
		if w == 2 {
			return append(binary.BigEndian.AppendUint16(out, uint16(len(s))), s...)
		}
		return append(binary.BigEndian.AppendUint32(out, uint32(len(s))), s...)
	}
	str := func(v any) string {
		switch x := v.(type) {
		case string:
			return x
		case []byte:
			return string(x)
		}
		t.Fatalf("layout %c: %#v is no string", tag, v)
		return ""
	}
	out := []byte{tag}
	i := 0
	for _, f := range fields {
		v := slots[i]
		i++
		switch f {
		case fStr16:
			out = chunk(out, 2, str(v))
		case fStr32:
			out = chunk(out, 4, str(v))
		case fInt32, fUint32:
			out = binary.BigEndian.AppendUint32(out, uint32(num(v)))
		case fInt64:
			out = binary.BigEndian.AppendUint64(out, uint64(num(v)))
		case fOpt64:
			n := int64(none)
			if v != "" {
				n = num(v)
			}
			out = binary.BigEndian.AppendUint64(out, uint64(n))
		case fBool:
			if v.(bool) {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		case fKind:
			out = append(out, str(v)...)
		case fGroups:
			groups := v.(map[string]any)
			var g []byte
			for _, id := range slices.Sorted(maps.Keys(groups)) {
				g = binary.BigEndian.AppendUint64(chunk(g, 2, id), uint64(num(groups[id])))
			}
			out = chunk(out, 4, string(g))
		}
	}
	if tag == tagMessage { // the lengths and count, positions, values and parts
		cfg, st, expired := str(slots[mCfg]), str(slots[mSt]), str(slots[mExpired])
		positions, parts := slots[mPositions].([]any), slots[mParts].([]any)
		out = binary.BigEndian.AppendUint32(out, uint32(len(cfg)))
		out = binary.BigEndian.AppendUint32(out, uint32(len(st)))
		out = binary.BigEndian.AppendUint16(out, uint16(len(expired)))
		out = binary.BigEndian.AppendUint32(out, uint32(len(parts)))
		if slots[mKind] == "d" {
			for _, p := range positions {
				out = binary.BigEndian.AppendUint32(out, uint32(num(p)))
			}
		}
		out = append(append(append(out, expired...), cfg...), st...)
		for _, p := range parts {
			out = append(out, str(p)...)
		}
	}
	return out
}

// want is a slot array of layout tag as unpackBinary gives it: int64 for
// int (in groups and positions too), and []byte for a message's cfg, st
// and parts.
func want(tag byte, v []any) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = loose(x)
	}
	if tag == tagMessage {
		out[mCfg], out[mSt] = []byte(v[mCfg].(string)), []byte(v[mSt].(string))
		parts := out[mParts].([]any)
		for j, p := range parts {
			parts[j] = []byte(p.(string))
		}
	}
	return out
}

// structScript packs sample values with the revision-4 spec's struct
// formats, as the scripts will: participants, cfgs, sts, audit events and
// messages, returned in the order of TestBinaryMatchesRedisStruct's table.
const structScript = `
local NONE = -2^63
local id, a, b, g1, g2 = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local P = '>c1Hc0i4i8i8i4BBHc0'
local C = '>c1Hc0Hc0I4Hc0Hc0Hc0Hc0Hc0I4c0i8Hc0i8'
local S = '>c1Hc0i8i8Hc0i8i8i8i8i8i8i4i8I4c0'
local E = '>c1i8i8Hc0Hc0i8i8i8i8I4c0'
local M = '>c1c1i8i8i8i8I4I4HI4'
local pa = struct.pack(P, 'P', #a, a, 0, 62000, 1000, 1, 0, 0, 0, '')
local pb = struct.pack(P, 'P', #b, b, 3, -5, 60005, 2, 1, 1, #g1, g1)
local meta = '{"table":7}'
local cfg = struct.pack(C, 'C', #id, id, #'per_group', 'per_group', 2, #'120000', '120000', 0, '',
  #'2000', '2000', 0, '', 1, '1', #meta, meta, 1796310239595, #'60000,10000', '60000,10000', 3)
local cfg2 = struct.pack(C, 'C', #id, id, #'per_participant', 'per_participant', 0, #'-1', '-1', 0, '',
  0, '', 0, '', 1, '0', 0, '', 1796310239595, 0, '', 0)
local stNone = struct.pack(S, 'S', #'created', 'created', 1, NONE, 0, '', NONE, NONE, NONE,
  1796310239595, 0, 0, 0, NONE, 0, '')
local groups = struct.pack('>Hc0i8', #g1, g1, 5000) .. struct.pack('>Hc0i8', #g2, g2, -3)
local stGroups = struct.pack(S, 'S', #'running', 'running', 5, 1, #b, b, 1796310240000, 1796310239600, NONE,
  1796310240000, 1, 250, 2, NONE, #groups, groups)
local stGlobal = struct.pack(S, 'S', #'completed', 'completed', 9, NONE, 0, '', NONE, 1796310239600,
  1796310250000, 1796310250000, 0, 0, -1, -250, 0, '')
local evNone = struct.pack(E, 'E', 5, 3, #a, a, 0, '', NONE, NONE, NONE, 1796310240001, 0, '')
local actor = 'auth0|user-1'
local ev = struct.pack(E, 'E', 6, 3, #b, b, #g1, g1, -5, 60005, 2, 1796310240002, #actor, actor)
local mf = struct.pack(M, 'M', 'f', 3, 5, 4, 1796310240001, #cfg, #stGroups, #a, 2) .. a .. cfg .. stGroups .. pa .. pb
local md = struct.pack(M, 'M', 'd', 3, 6, 5, 1796310240002, #cfg, #stGroups, 0, 2) .. struct.pack('>I4I4', 1, 0) ..
  cfg .. stGroups .. pb .. pa
local mEmpty = struct.pack(M, 'M', 'd', 3, 7, 6, 1796310240003, #cfg2, #stNone, 0, 0) .. cfg2 .. stNone
return {pa, pb, cfg, cfg2, stNone, stGroups, stGlobal, evNone, ev, mf, md, mEmpty}
`

// Sample ids of the binary tests.
const (
	binID = "6f1c0000-0000-4000-8000-00000000007a"
	binA  = "11111111-1111-4111-8111-000000000001"
	binB  = "11111111-1111-4111-8111-000000000002"
	binG1 = "22222222-2222-4222-8222-222222222221"
	binG2 = "22222222-2222-4222-8222-222222222222"
)

// The slot arrays structScript packs (revision 3's, with "" for none).
var (
	binPA       = []any{binA, 0, 62_000, 1_000, 1, false, false, ""}
	binPB       = []any{binB, 3, -5, 60_005, 2, true, true, binG1}
	binCfg      = []any{binID, "per_group", 2, "120000", "", "2000", "", "1", `{"table":7}`, 1_796_310_239_595, "60000,10000", 3}
	binCfg2     = []any{binID, "per_participant", 0, "-1", "", "", "", "0", "", 1_796_310_239_595, "", 0}
	binStNone   = []any{"created", 1, "", "", "", "", "", 1_796_310_239_595, 0, 0, 0, "", map[string]any{}}
	binStGroups = []any{"running", 5, 1, binB, 1_796_310_240_000, 1_796_310_239_600, "", 1_796_310_240_000, 1, 250, 2, "",
		map[string]any{binG1: 5_000, binG2: -3}}
	binStGlobal = []any{"completed", 9, "", "", "", 1_796_310_239_600, 1_796_310_250_000, 1_796_310_250_000, 0, 0, -1, -250,
		map[string]any{}}
	binEvNone = []any{5, 3, binA, "", "", "", "", 1_796_310_240_001, ""}
	binEv     = []any{6, 3, binB, binG1, -5, 60_005, 2, 1_796_310_240_002, "auth0|user-1"}
)

// binMessage is a message's slot array with its stored values written in
// revision 4.
func binMessage(t testing.TB, kind string, life, version, base, now int, cfg, st []any, expired string,
	positions []any, parts ...[]any) []any {
	t.Helper()
	ps := make([]any, len(parts))
	for i, p := range parts {
		ps[i] = string(encode(t, tagParticipant, p))
	}
	return []any{kind, life, version, base, now, string(encode(t, tagCfg, cfg)), string(encode(t, tagSt, st)),
		expired, positions, ps}
}

// TestBinaryMatchesRedisStruct: what Redis's struct.pack writes with the
// spec's formats, the Go reader reads as the spec's slot arrays, and the
// tests' encoder writes the same bytes, so the reader and the scripts
// agree on every layout (none, negative numbers, empty strings, group
// banks, both kinds of message).
func TestBinaryMatchesRedisStruct(t *testing.T) {
	rdb := servertest.Redis(t)
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("SKIPPED: no Redis on %s (%v), so the revision-4 reader was not checked against Redis's struct",
			servertest.RedisAddr(), err)
	}
	reply, err := rdb.Eval(ctx, structScript, nil, binID, binA, binB, binG1, binG2).Slice()
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name  string
		tag   byte
		slots []any
	}{
		{"participant, no group", tagParticipant, binPA},
		{"participant, negative total, in a group", tagParticipant, binPB},
		{"cfg per_group, metadata, warnings", tagCfg, binCfg},
		{"cfg with empty strings", tagCfg, binCfg2},
		{"st with every optional slot none", tagSt, binStNone},
		{"st with two group banks", tagSt, binStGroups},
		{"st with a negative bank", tagSt, binStGlobal},
		{"event with no numbers, no group, no actor", tagEvent, binEvNone},
		{"event with negatives and an actor", tagEvent, binEv},
		{"message f, two parts", tagMessage,
			binMessage(t, "f", 3, 5, 4, 1_796_310_240_001, binCfg, binStGroups, binA, []any{}, binPA, binPB)},
		{"message d, positions 1 and 0", tagMessage,
			binMessage(t, "d", 3, 6, 5, 1_796_310_240_002, binCfg, binStGroups, "", []any{1, 0}, binPB, binPA)},
		{"message d, no parts", tagMessage,
			binMessage(t, "d", 3, 7, 6, 1_796_310_240_003, binCfg2, binStNone, "", []any{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if i >= len(reply) {
				t.Fatalf("the script returned %d values", len(reply))
			}
			b := []byte(reply[i].(string))
			_, slots := layout(tc.tag)
			got, err := UnpackArray(b, slots)
			if err != nil {
				t.Fatalf("%v reading %x", err, b)
			}
			if w := want(tc.tag, tc.slots); !reflect.DeepEqual(got, w) {
				t.Fatalf("read\n%#v\nwant\n%#v", got, w)
			}
			if enc := encode(t, tc.tag, tc.slots); !bytes.Equal(enc, b) {
				t.Fatalf("the tests' encoder wrote\n%x\nstruct.pack\n%x", enc, b)
			}
		})
	}
}

// be concatenates big-endian fields: a byte, uint16, int32, uint32,
// int64, or string and []byte as they are.
func be(vals ...any) []byte {
	var out []byte
	for _, v := range vals {
		switch x := v.(type) {
		case byte:
			out = append(out, x)
		case uint16:
			out = binary.BigEndian.AppendUint16(out, x)
		case int32:
			out = binary.BigEndian.AppendUint32(out, uint32(x))
		case uint32:
			out = binary.BigEndian.AppendUint32(out, x)
		case int64:
			out = binary.BigEndian.AppendUint64(out, uint64(x))
		case string:
			out = append(out, x...)
		case []byte:
			out = append(out, x...)
		default:
			panic(fmt.Sprintf("be: %T", v))
		}
	}
	return out
}

// TestUnpackBinaryMalformed: the revision-4 reader refuses anything the
// scripts would not write (a hostile publisher reaches every relay): a
// value cut anywhere or followed by anything, a length past the end, a
// tag of another layout, a boolean or kind out of range, none where a
// number must be, a group twice, and a count its bytes cannot hold, which
// it refuses without allocating it.
func TestUnpackBinaryMalformed(t *testing.T) {
	p := func(active, expired byte) []byte {
		return be(byte('P'), uint16(1), "a", int32(0), int64(1), int64(2), int32(0), active, expired, uint16(0))
	}
	st := func(groups []byte) []byte {
		return be(byte('S'), uint16(0), int64(1), int64(none), uint16(0), int64(none), int64(none), int64(none),
			int64(7), int64(0), int64(0), int32(0), int64(none), uint32(len(groups)), groups)
	}
	head := func(kind byte, count uint32) []byte {
		return be(byte('M'), kind, int64(1), int64(2), int64(1), int64(3), uint32(0), uint32(0), uint16(0), count)
	}
	part := p(0, 0)
	event := encode(t, tagEvent, binEvNone) // its actor, last, is empty
	// the values the cases below break (each checked to be read), and
	// every layout's sample, each cut at every byte
	valid := map[string][]byte{
		"p(0, 0)":            p(0, 0),
		"st(nil)":            st(nil),
		"head('d', 0)":       head('d', 0),
		"a group of id \"\"": st(be(uint16(0), int64(1))),
		"participant":        encode(t, tagParticipant, binPB),
		"cfg":                encode(t, tagCfg, binCfg),
		"st":                 encode(t, tagSt, binStGroups),
		"event":              encode(t, tagEvent, binEv),
		"message f": encode(t, tagMessage,
			binMessage(t, "f", 3, 5, 4, 1_796_310_240_001, binCfg, binStGroups, binA, []any{}, binPA, binPB)),
		"message d": encode(t, tagMessage,
			binMessage(t, "d", 3, 6, 5, 1_796_310_240_002, binCfg, binStGroups, "", []any{1, 0}, binPB, binPA)),
	}
	type bad struct {
		name  string
		b     []byte
		slots int
	}
	cases := []bad{
		{"a length longer than what is left", be(byte('P'), uint16(0xffff), "a"), pGroup + 1},
		{"an s32 longer than what is left", be(event[:len(event)-4], uint32(0xffffffff)), len(eventFields)},
		{"bool 2", p(2, 0), pGroup + 1},
		{"bool 255", p(0, 255), pGroup + 1},
		{"a participant asked for as a cfg", p(0, 0), cfgLife + 1},
		{"a cfg asked for as a participant", valid["cfg"], pGroup + 1},
		{"a byte that is no tag", append([]byte{'Q'}, p(0, 0)[1:]...), pGroup + 1},
		{"kind x", head('x', 0), mParts + 1},
		{"kind F", head('F', 0), mParts + 1},
		{"none where a number must be", be(byte('E'), int64(none), int64(3), uint16(0), uint16(0), int64(0), int64(0),
			int64(0), int64(1), uint32(0)), len(eventFields)},
		{"none as a group's bank", st(be(uint16(1), "g", int64(none))), stGroups + 1},
		{"a group twice", st(be(uint16(1), "g", int64(1), uint16(1), "g", int64(2))), stGroups + 1},
		{"a group cut short", st(be(uint16(1), "g", int32(1))), stGroups + 1},
		{"a group id past the groups", st(be(uint16(0xffff), "g", int64(1))), stGroups + 1},
		{"groups past the value", be(st(nil)[:len(st(nil))-4], uint32(11), uint16(0), int64(1)), stGroups + 1},
		{"a part cut short", be(head('f', 1), part[:len(part)-1]), mParts + 1},
		{"fewer parts than the count", be(head('f', 2), part), mParts + 1},
		{"a part of no layout P", be(head('f', 1), "Q", part[1:]), mParts + 1},
		{"a part of revision 3", be(head('f', 1), "\x98\xa1a\x00\x01\x02\x00\xc2\xc2\xa0"), mParts + 1},
		{"a cfg longer than what is left", be(byte('M'), byte('f'), int64(1), int64(2), int64(1), int64(3),
			uint32(9), uint32(0), uint16(0), uint32(0), "abc"), mParts + 1},
		{"a count of 4 billion, kind f", be(head('f', 0xffffffff), part, part), mParts + 1},
		{"a count of 4 billion, kind d", be(head('d', 0xffffffff), uint32(0), uint32(0)), mParts + 1},
		{"a count of more positions than the bytes hold", be(head('d', 3), uint32(0), uint32(0)), mParts + 1},
	}
	for name, b := range valid {
		_, slots := layout(b[0])
		if _, err := UnpackArray(b, slots); err != nil {
			t.Fatalf("%s: the valid value is refused: %v", name, err)
		}
		for n := range len(b) {
			cases = append(cases, bad{fmt.Sprintf("%s cut at %d of %d", name, n, len(b)), b[:n], slots})
		}
		cases = append(cases, bad{name + " with a trailing byte", append(slices.Clone(b), 0), slots})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v, err := UnpackArray(tc.b, tc.slots)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("read %#v", v)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("allocated %d bytes refusing %d", grew, len(tc.b))
			}
		})
	}
}

// TestBinaryRendersAsMsgpack: a head, a participant and a whole message
// render to the same bytes from revision 4 as from revision 3's
// MessagePack of the same slots, and a revision-4 message may carry the
// cfg and st revision 3 stored.
func TestBinaryRendersAsMsgpack(t *testing.T) {
	cfgGlobal := []any{binID, "global", 2, "300000", "30000", "", "600000", "0", "", 1_796_310_239_595, "60000", 4}
	stGlobal := []any{"running", 7, 0, binA, 1_796_310_240_000, 1_796_310_239_600, "", 1_796_310_240_000, 3, 12, 0,
		-17, map[string]any{}}
	for _, tc := range []struct {
		name    string
		cfg, st []any
		parts   [][]any
	}{
		{"per_group, two banks", binCfg, binStGroups, [][]any{binPA, binPB}},
		{"per_participant, every optional slot none", binCfg2, binStNone, nil},
		{"global, a negative bank", cfgGlobal, stGlobal, [][]any{binPB}},
		{"completed", binCfg, binStGlobal, [][]any{binPB, binPA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgB, stB := encode(t, tagCfg, tc.cfg), encode(t, tagSt, tc.st)
			cfgM, stM := []byte(pack(t, tc.cfg)), []byte(pack(t, tc.st))
			head, err := RenderHead(cfgB, stB, 1_796_310_240_001, binA)
			if err != nil {
				t.Fatal(err)
			}
			if headM, err := RenderHead(cfgM, stM, 1_796_310_240_001, binA); err != nil || !bytes.Equal(head, headM) {
				t.Fatalf("head from revision 4\n%s\nfrom MessagePack (%v)\n%s", head, err, headM)
			}
			var partsB, partsM []any
			for _, p := range tc.parts {
				b, m := encode(t, tagParticipant, p), pack(t, p)
				partsB, partsM = append(partsB, string(b)), append(partsM, m)
				got, err := RenderParticipant(b)
				if err != nil {
					t.Fatal(err)
				}
				if gotM, err := RenderParticipant([]byte(m)); err != nil || !bytes.Equal(got, gotM) {
					t.Fatalf("participant from revision 4\n%s\nfrom MessagePack (%v)\n%s", got, err, gotM)
				}
			}
			count := tc.cfg[cfgN].(int)
			if len(tc.parts) != count {
				return // not a whole state
			}
			// revision 4 throughout, revision 3 throughout, and a
			// revision-4 message of the cfg and st revision 3 stored
			msgs := [][]byte{
				encode(t, tagMessage, []any{"f", 3, 5, 4, 1_796_310_240_001, string(cfgB), string(stB), binA, []any{}, partsB}),
				[]byte(pack(t, []any{"f", 3, 5, 4, 1_796_310_240_001, string(cfgM), string(stM), binA, []any{}, partsM})),
				encode(t, tagMessage, []any{"f", 3, 5, 4, 1_796_310_240_001, string(cfgM), string(stM), binA, []any{}, partsB}),
			}
			var states []string
			for _, m := range msgs {
				d, err := Decode(m)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(d.Session, head) || d.SessionID != binID || d.Life != 3 || d.Version != 5 ||
					d.BaseVersion != 4 || d.Count != count || !d.Full {
					t.Fatalf("decoded %+v", d)
				}
				states = append(states, string(Build(d.Session, d.Participants)))
			}
			if states[0] != states[1] || states[2] != states[1] {
				t.Fatalf("whole states\n%s", strings.Join(states, "\n"))
			}
		})
	}
}

// FuzzUnpackBinary: what the revision-4 reader accepts, the encoder writes
// back to as many bytes, read as the same slots: it accepts nothing the
// layouts cannot express (st's groups may come in any order, so the bytes
// themselves may differ).
func FuzzUnpackBinary(f *testing.F) {
	f.Add(encode(f, tagParticipant, binPB))
	f.Add(encode(f, tagSt, binStGroups))
	f.Add(encode(f, tagEvent, binEvNone))
	f.Add(encode(f, tagMessage, binMessage(f, "d", 3, 6, 5, 1_796_310_240_002, binCfg, binStGroups, "", []any{1, 0},
		binPB, binPA)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || !isTag(b[0]) {
			return
		}
		_, slots := layout(b[0])
		v, err := unpackBinary(b, slots)
		if err != nil {
			return
		}
		again := encode(t, b[0], v)
		if len(again) != len(b) {
			t.Fatalf("read %#v from %x; it writes as %x", v, b, again)
		}
		if w, err := unpackBinary(again, slots); err != nil || !reflect.DeepEqual(w, v) {
			t.Fatalf("read %#v from %x, then %#v (%v)", v, b, w, err)
		}
	})
}

// BenchmarkDecodeBinary: BenchmarkDecode's message in revision 4.
func BenchmarkDecodeBinary(b *testing.B) {
	cfg := []any{"6f1c0000-0000-4000-8000-00000000007a", "per_participant", 4, "120000", "", "2000", "", "1", "",
		1_796_310_239_595, "", 3}
	st := []any{"running", 5, 1, "11111111-1111-4111-8111-000000000002", 1_796_310_240_000, 1_796_310_239_600, "",
		1_796_310_240_000, 0, 0, 0, "", map[string]any{}}
	var parts [][]any
	for i := range 4 {
		parts = append(parts, []any{"11111111-1111-4111-8111-000000000001", i, 62_000, 1_000, 1, false, false, ""})
	}
	msg := encode(b, tagMessage, binMessage(b, "f", 3, 5, 4, 1_796_310_240_001, cfg, st, "", []any{}, parts...))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decode(msg)
		if err != nil {
			b.Fatal(err)
		}
		Build(d.Session, d.Participants)
	}
}
