package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestAPIIDCase: upper- and lower-case spellings of a UUID are one
// session: one state in Redis, one WebSocket audience, one history in
// PostgreSQL.
func TestAPIIDCase(t *testing.T) {
	t.Parallel()
	redisAddr, _ := startRedisServer(t)
	schema := persistSchema(t)
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr,
		"DATABASE_URL": persistURL("127.0.0.1:5432", schema)}, nil)
	id, p1, p2, g := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	up := strings.ToUpper
	body := `{"session_id":"` + up(id) + `","sync_mode":"per_group","participants":[` +
		`{"participant_id":"` + up(p1) + `","participant_index":0,"total_time_ms":60000,"group_id":"` + up(g) + `"},` +
		`{"participant_id":"` + p2 + `","participant_index":1,"total_time_ms":60000,"group_id":"` + g + `"}]}`
	r := doReq(t, "POST", s.base+"/v1/sessions", body)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	st := r.state(t)
	parts := st["participants"].([]any)
	if st["session_id"] != id || parts[0].(map[string]any)["participant_id"] != p1 ||
		parts[0].(map[string]any)["group_id"] != g {
		t.Fatalf("ids not lower-cased: %s", r.body)
	}
	if r := doReq(t, "POST", s.base+"/v1/sessions", strings.Replace(body, up(id), id, 1)); r.status != 409 {
		t.Fatalf("create again in lower case: %d %s, want 409 SESSION_EXISTS", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+id, ""); r.status != 200 {
		t.Fatalf("GET in lower case: %d %s", r.status, r.body)
	}

	addr := strings.TrimPrefix(s.base, "http://")
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?sessionId="+up(id), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if m := wsRead(t, c); m.Type != "CONNECTED" || m.SessionID != id {
		t.Fatalf("connected: %s", m.raw)
	}
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+up(id)+"/start", ""); r.status != 200 {
		t.Fatalf("start in upper case: %d %s", r.status, r.body)
	}
	r = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch",
		`{"current_participant_id":"`+up(p1)+`","next_participant_id":"`+up(p2)+`"}`)
	if r.status != 200 || r.state(t)["active_participant_id"] != p2 {
		t.Fatalf("switch in lower case naming upper-case participants: %d %s", r.status, r.body)
	}
	for _, want := range []int64{2, 3} {
		if m := wsRead(t, c); m.Type != "STATE_UPDATE" || m.Version != want {
			t.Fatalf("client on the upper-case id, want version %d: %.200s", want, m.raw)
		}
	}

	waitFor(t, 10*time.Second, "3 events in the history", func() bool {
		r := doReq(t, "GET", s.base+"/v1/sessions/"+up(id)+"/events", "")
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(r.body, &page)
		return r.status == 200 && len(page.Data) == 3
	})
	pool, err := pgxpool.New(context.Background(), persistURL("127.0.0.1:5432", schema))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var ids []string
	rows, err := pool.Query(context.Background(), "SELECT DISTINCT session_id::text FROM sync_events")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s)
	}
	if rows.Err() != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("sync_events holds session ids %v (%v), want only %s", ids, rows.Err(), id)
	}
}
