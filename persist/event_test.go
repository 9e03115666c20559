package persist

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	sid, pid := "6f1c0e4e-8a4b-4c1d-9e2f-0123456789ab", "11111111-2222-4333-8444-555555555555"
	good := func() map[string]any {
		return map[string]any{"type": "cycle_switched", "session_id": sid, "version": "3",
			"participant_id": pid, "group_id": "", "time_remaining_ms": "59000", "time_elapsed_ms": "1000",
			"cycle_number": "1", "timestamp": "1764100000123", "state_kind": "full", "state": `{"a":1}`}
	}
	tests := []struct {
		name    string
		edit    func(map[string]any)
		wantErr string
		life    int64 // the decoded life
	}{
		{"full event, from before lives", func(map[string]any) {}, "", 0},
		{"a life", func(m map[string]any) { m["life"] = "42" }, "", 42},
		{"life empty", func(m map[string]any) { m["life"] = "" }, "", 0},
		{"life negative", func(m map[string]any) { m["life"] = "-1" }, "bad life", 0},
		{"life not a number", func(m map[string]any) { m["life"] = "x" }, "bad life", 0},
		{"state JSON but no object", func(m map[string]any) { m["state"] = `[1,2]` }, "", 0},
		{"deleted, no state", func(m map[string]any) {
			m["type"], m["state_kind"], m["state"], m["participant_id"] = "session_deleted", "", "", ""
		}, "", 0},
		{"unknown type", func(m map[string]any) { m["type"] = "nope" }, "unknown type", 0},
		{"missing session id", func(m map[string]any) { delete(m, "session_id") }, "session_id is not a UUID", 0},
		{"version zero", func(m map[string]any) { m["version"] = "0" }, "bad version", 0},
		{"version not a number", func(m map[string]any) { m["version"] = "x" }, "bad version", 0},
		{"bad timestamp", func(m map[string]any) { m["timestamp"] = "" }, "bad timestamp", 0},
		{"participant not a UUID", func(m map[string]any) { m["participant_id"] = "bob" }, "participant_id is not a UUID", 0},
		{"bad number", func(m map[string]any) { m["cycle_number"] = "1.5" }, "bad cycle_number", 0},
		{"state not JSON", func(m map[string]any) { m["state"] = `{"a":` }, "state is not JSON", 0},
		{"unknown state kind", func(m map[string]any) { m["state_kind"] = "partial" }, "unknown state_kind", 0},
		{"actor", func(m map[string]any) { m["actor"] = "user-42 ü" }, "", 0},
		{"actor with NUL", func(m map[string]any) { m["actor"] = "a\x00b" }, "actor is not valid text", 0},
		{"actor not UTF-8", func(m map[string]any) { m["actor"] = "a\xffb" }, "actor is not valid text", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := good()
			tc.edit(v)
			e, err := decode("s", redis.XMessage{ID: "1764100000123-7", Values: v})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.sessionID != sid || e.version < 3 || e.timestampMS != 1764100000123 {
				t.Fatalf("decoded %+v", e)
			}
			if e.typ == "cycle_switched" && (e.participantID == nil || *e.participantID != pid || e.groupID != nil ||
				e.remaining == nil || *e.remaining != 59000 || e.state == nil) {
				t.Fatalf("optional fields wrong: %+v", e)
			}
			if e.typ == "session_deleted" && (e.state != nil || e.participantID != nil) {
				t.Fatalf("deleted event should carry no state or participant: %+v", e)
			}
			if a, ok := v["actor"].(string); ok != (e.actor != nil) || ok && *e.actor != a {
				t.Fatalf("actor %v, want %q", e.actor, a)
			}
			if e.id != "1764100000123-7" || e.life != tc.life {
				t.Fatalf("entry %s, life %d; want life %d", e.id, e.life, tc.life)
			}
		})
	}
	if _, err := decode("s", redis.XMessage{ID: "nope", Values: good()}); err == nil || err.Error() != "bad entry id" {
		t.Fatalf("bad entry id: %v", err)
	}
}

func TestNextID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"0-0": "0-1", "1700000000000-5": "1700000000000-6",
		"5-18446744073709551615": "6-0", "garbage": "",
	} {
		if got := nextID(in); got != want {
			t.Errorf("nextID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConsumerNamesDistinct(t *testing.T) {
	t.Parallel()
	a, b := NewWorker(nil, nil, quietLog(), Config{}), NewWorker(nil, nil, quietLog(), Config{})
	if a.cfg.Consumer == b.cfg.Consumer || a.cfg.Consumer == "" {
		t.Fatalf("two workers of one process share the name %q", a.cfg.Consumer)
	}
	if a.cfg.Lanes != 2 || len(a.cfg.Streams) != keyspace.Shards || DeadLetterStream("sk:{a}:events") != "sk:{a}:events:dead" {
		t.Fatalf("defaults: lanes %d, streams %d", a.cfg.Lanes, len(a.cfg.Streams))
	}
}
