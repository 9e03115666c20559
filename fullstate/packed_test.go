package fullstate

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
)

// embedded writes a message as the embedded Redis's cjson does: JSON
// arrays all the way down, nested packed values as JSON text.
func embedded(t testing.TB, m []any) []byte {
	t.Helper()
	js := func(v any) string {
		var d any
		if err := msgpack.Unmarshal([]byte(v.(string)), &d); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	out := append([]any(nil), m...)
	out[mCfg], out[mSt] = js(m[mCfg]), js(m[mSt])
	parts := append([]any(nil), m[mParts].([]any)...)
	for i, p := range parts {
		parts[i] = js(p)
	}
	out[mParts] = parts
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pack(t testing.TB, v any) string {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDecodePacked: a packed message renders as the v1 JSON the scripts'
// getSession-2 would give (head, participants, expired_participant_id),
// from MessagePack, revision 4's binary layouts and the embedded Redis's
// JSON alike, and anything malformed is an error, never a state or a panic.
func TestDecodePacked(t *testing.T) {
	const id = "6f1c0000-0000-4000-8000-00000000007a"
	const a, b = "11111111-1111-4111-8111-000000000001", "11111111-1111-4111-8111-000000000002"
	cfgSlots := []any{id, "per_participant", 2, "120000", "", "2000", "", "1", "", 1_796_310_239_595, "", 3}
	stSlots := []any{"running", 5, 1, b, 1_796_310_240_000, 1_796_310_239_600, "", 1_796_310_240_000, 0, 0, 0, "",
		map[string]any{}}
	paSlots := []any{a, 0, 62_000, 1_000, 1, false, false, ""}
	pbSlots := []any{b, 3, -5, 60_005, 2, true, true, "22222222-2222-4222-8222-222222222222"}
	cfg, st, pa, pb := pack(t, cfgSlots), pack(t, stSlots), pack(t, paSlots), pack(t, pbSlots)
	// the same values in revision 4
	cfg4, st4 := string(encode(t, tagCfg, cfgSlots)), string(encode(t, tagSt, stSlots))
	pa4, pb4 := string(encode(t, tagParticipant, paSlots)), string(encode(t, tagParticipant, pbSlots))
	const legacy = `{"participant_id":"x","participant_index":9}`
	head := `{"session_id":"` + id + `","sync_mode":"per_participant","status":"running","version":5,"life":3,` +
		`"active_participant_id":"` + b + `","total_time_ms":120000,"time_per_cycle_ms":null,"increment_ms":2000,` +
		`"auto_advance":true,"cycle_started_at":"2026-12-03T15:04:00.000Z","session_started_at":"2026-12-03T15:03:59.600Z",` +
		`"session_completed_at":null,"created_at":"2026-12-03T15:03:59.595Z","updated_at":"2026-12-03T15:04:00.000Z",` +
		`"server_time_ms":1796310240001,"expired_participant_id":"` + a + `"}`
	jsonA := `{"participant_id":"` + a + `","participant_index":0,"total_time_ms":62000,"time_used_ms":1000,` +
		`"time_remaining_ms":62000,"cycle_count":1,"is_active":false,"has_expired":false}`
	jsonB := `{"participant_id":"` + b + `","participant_index":3,"total_time_ms":-5,"time_used_ms":60005,` +
		`"time_remaining_ms":0,"cycle_count":2,"is_active":true,"has_expired":true,` +
		`"group_id":"22222222-2222-4222-8222-222222222222"}`
	msg := func(kind string, positions []any, parts ...any) []any {
		return []any{kind, 3, 5, 4, 1_796_310_240_001, cfg, st, a, positions, parts}
	}
	msg4 := func(kind string, positions []any, parts ...any) []byte {
		return encode(t, tagMessage, []any{kind, 3, 5, 4, 1_796_310_240_001, cfg4, st4, a, positions, parts})
	}
	whole := strings.TrimSuffix(head, "}") + `,"participants":[` + jsonA + "," + jsonB + "]}"
	for _, tc := range []struct {
		name string
		msg  []byte
		full string // Build of a whole state, or "" for a delta
		pos  []int
		err  bool
	}{
		{"whole state", []byte(pack(t, msg("f", []any{}, pa, pb))),
			strings.TrimSuffix(head, "}") + `,"participants":[` + jsonA + "," + jsonB + "]}", nil, false},
		{"delta", []byte(pack(t, msg("d", []any{1}, pb))), "", []int{1}, false},
		{"a revision-2 fragment passes as it is", []byte(pack(t, msg("d", []any{0}, legacy))), "", []int{0}, false},
		{"the embedded Redis's JSON form", embedded(t, msg("f", []any{}, pa, pb)),
			strings.TrimSuffix(head, "}") + `,"participants":[` + jsonA + "," + jsonB + "]}", nil, false},
		{"unknown kind", []byte(pack(t, msg("x", []any{}, pa, pb))), "", nil, true},
		{"whole state short of a participant", []byte(pack(t, msg("f", []any{}, pa))), "", nil, true},
		{"position out of range", []byte(pack(t, msg("d", []any{2}, pb))), "", nil, true},
		{"positions and parts differ", []byte(pack(t, msg("d", []any{0, 1}, pb))), "", nil, true},
		{"participant not packed", []byte(pack(t, msg("d", []any{0}, "xx"))), "", nil, true},
		{"participant short of slots", []byte(pack(t, msg("d", []any{0}, pack(t, []any{a, 0})))), "", nil, true},
		{"too few slots", []byte(pack(t, []any{"f", 3, 5})), "", nil, true},
		{"not an array", []byte(pack(t, "f")), "", nil, true},
		{"truncated", []byte(pack(t, msg("f", []any{}, pa, pb)))[:40], "", nil, true},
		{"bad JSON form", []byte(`["f",3`), "", nil, true},
		// the decoder would allocate what a length claims, or recurse as
		// deep as the nesting: both are refused first (wellFormed)
		{"an array longer than the message", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, "", nil, true},
		{"nested too deep", []byte(strings.Repeat("\x91", 64) + "\xc0"), "", nil, true},
		{"bytes after the value", append([]byte(pack(t, msg("f", []any{}, pa, pb))), 0xc0), "", nil, true},
		{"revision 4: whole state", msg4("f", []any{}, pa4, pb4), whole, nil, false},
		{"revision 4: delta", msg4("d", []any{1}, pb4), "", []int{1}, false},
		{"revision 4: a message of the cfg and st revision 3 stored", encode(t, tagMessage,
			[]any{"f", 3, 5, 4, 1_796_310_240_001, cfg, st, a, []any{}, []any{pa4, pb4}}), whole, nil, false},
		{"revision 4: a participant of revision 3 is refused", msg4("f", []any{}, pa, pb4), "", nil, true},
		{"revision 4: a revision-2 fragment is refused", msg4("d", []any{0}, legacy), "", nil, true},
		{"revision 4: whole state short of a participant", msg4("f", []any{}, pa4), "", nil, true},
		{"revision 4: position out of range", msg4("d", []any{2}, pb4), "", nil, true},
		{"revision 4: participant cut short", msg4("d", []any{0}, pb4[:len(pb4)-1]), "", nil, true},
		{"revision 4: a participant for the cfg", encode(t, tagMessage,
			[]any{"f", 3, 5, 4, 1_796_310_240_001, pa4, st4, a, []any{}, []any{pa4, pb4}}), "", nil, true},
		{"revision 4: bytes after the value", append(msg4("f", []any{}, pa4, pb4), 0), "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decode(tc.msg)
			if tc.err {
				if err == nil {
					t.Fatalf("decoded %+v", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Session) != head || d.SessionID != id || d.Life != 3 || d.Version != 5 || d.BaseVersion != 4 ||
				d.Timestamp != 1_796_310_240_001 || d.Count != 2 || d.Full != (tc.full != "") {
				t.Fatalf("decoded life %d version %d base %d at %d, %d participants, full %v\nhead %s",
					d.Life, d.Version, d.BaseVersion, d.Timestamp, d.Count, d.Full, d.Session)
			}
			if tc.full != "" {
				if got := string(Build(d.Session, d.Participants)); got != tc.full {
					t.Fatalf("state\n%s\nwant\n%s", got, tc.full)
				}
				return
			}
			if len(d.Positions) != len(tc.pos) || d.Positions[0] != tc.pos[0] {
				t.Fatalf("positions %v, want %v", d.Positions, tc.pos)
			}
		})
	}
}

// FuzzDecode: no input makes Decode panic; what it accepts renders.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`["f",1,2,1,3,"[\"i\",\"global\",1]","[]","",{},[]]`))
	f.Add([]byte{0x9a, 0xa1, 'f', 1, 2, 1, 3, 0xa0, 0xa0, 0xa0, 0x90, 0x90})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	// revision 4: a whole state, a delta, one with nothing in it
	f.Add(encode(f, tagMessage, binMessage(f, "f", 3, 5, 4, 1_796_310_240_001, binCfg, binStGroups, binA, []any{},
		binPA, binPB)))
	f.Add(encode(f, tagMessage, binMessage(f, "d", 3, 6, 5, 1_796_310_240_002, binCfg, binStGroups, "", []any{1},
		binPB)))
	f.Add(encode(f, tagMessage, binMessage(f, "d", 3, 7, 6, 1_796_310_240_003, binCfg2, binStNone, "", []any{})))
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := Decode(msg)
		if err == nil && d.Full {
			Build(d.Session, d.Participants)
		}
	})
}

// BenchmarkDecode: what an instance spends on each switch's reply and on
// each message the relay renders (4 participants, the whole state).
func BenchmarkDecode(b *testing.B) {
	cfg := pack(b, []any{"6f1c0000-0000-4000-8000-00000000007a", "per_participant", 4, "120000", "", "2000", "",
		"1", "", 1_796_310_239_595, "", 3})
	st := pack(b, []any{"running", 5, 1, "11111111-1111-4111-8111-000000000002", 1_796_310_240_000,
		1_796_310_239_600, "", 1_796_310_240_000, 0, 0, 0, "", map[string]any{}})
	var parts []any
	for i := range 4 {
		parts = append(parts, pack(b, []any{"11111111-1111-4111-8111-000000000001", i, 62_000, 1_000, 1, false, false, ""}))
	}
	msg := []byte(pack(b, []any{"f", 3, 5, 4, 1_796_310_240_001, cfg, st, "", []any{}, parts}))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decode(msg)
		if err != nil {
			b.Fatal(err)
		}
		Build(d.Session, d.Participants)
	}
}

// FuzzUnpackMatchesMsgpack: what the hand-written reader accepts, a
// general MessagePack decoder reads as the same values.
func FuzzUnpackMatchesMsgpack(f *testing.F) {
	f.Add([]byte{0x93, 0xa1, 'x', 0xcd, 0x01, 0x00, 0x81, 0xa1, 'g', 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})
	f.Add([]byte{0x92, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := unpackMsgpack(b)
		if err != nil {
			return
		}
		dec := msgpack.NewDecoder(bytes.NewReader(b))
		dec.UseLooseInterfaceDecoding(true)
		theirs, err := dec.DecodeInterfaceLoose()
		if err != nil {
			t.Fatalf("ours read %#v, msgpack refused it: %v", ours, err)
		}
		if a, b := loose(ours), loose(theirs); !reflect.DeepEqual(a, b) {
			t.Fatalf("ours %#v, msgpack %#v", a, b)
		}
	})
}

// loose maps values onto one form: integers as int64 where they fit,
// floats as float64 (NaN as a string), bytes as strings (a copy where v
// holds any).
func loose(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	case float32:
		return loose(float64(x))
	case float64:
		if math.IsNaN(x) { // NaN equals nothing, itself included
			return "NaN"
		}
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = loose(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = loose(e)
		}
		return out
	}
	return v
}
