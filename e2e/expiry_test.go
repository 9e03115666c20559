package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
)

// startKillable runs an instance against the Redis at redisAddr and
// returns its address and a func that SIGKILLs it.
func startKillable(t testing.TB, redisAddr string, env ...string) (string, func()) {
	in := startInstance(t, redisAddr, env...)
	return in.addr, in.kill
}

// TestExpiryAcrossInstances: two server processes share Redis. While both
// run, every deadline fires exactly once (both see it; the script lets one
// apply it) and reaches WebSocket clients on both. Then one is killed
// while deadlines are pending, and every one of them still fires, from the
// other.
func TestExpiryAcrossInstances(t *testing.T) {
	t.Parallel()
	eachBackend(t, testExpiryAcrossInstances)
}

func testExpiryAcrossInstances(t *testing.T, be backend) {
	first := be.start(t, "EXPIRY_POLL_MS=5")
	one, killOne := first.addr, first.kill
	two := be.start(t, "EXPIRY_POLL_MS=5").addr
	rdb := be.client(t)

	const n = 10
	type sess struct {
		id, p0 string
		bank   int
	}
	var early, late []sess
	for i := range 2 * n {
		s := sess{id: uuid.NewString(), p0: uuid.NewString(), bank: 1000 + 20*i}
		if i >= n {
			s.bank = 2500 + 20*i // pending when the first instance dies
			late = append(late, s)
		} else {
			early = append(early, s)
		}
	}
	all := append(append([]sess(nil), early...), late...)
	chans := make([]string, len(all))
	for i, s := range all {
		chans[i] = keyspace.For(s.id).MsgChannel
	}
	msgs := listen(t, rdb, chans...)
	for _, s := range all {
		body := `{"session_id":"` + s.id + `","sync_mode":"per_participant","auto_advance":true,"participants":[` +
			`{"participant_id":"` + s.p0 + `","participant_index":0,"total_time_ms":` + strconv.Itoa(s.bank) + `},` +
			`{"participant_id":"` + uuid.NewString() + `","participant_index":1,"total_time_ms":600000}]}`
		if r := doReq(t, "POST", "http://"+one+"/v1/sessions", body); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		t.Cleanup(func() { doReq(t, "DELETE", "http://"+two+"/v1/sessions/"+s.id, "") })
	}
	// WebSocket clients of the first early session on both instances
	wsA, wsB := servertest.WSDial(t, one, early[0].id), servertest.WSDial(t, two, early[0].id)
	for _, s := range all {
		if r := doReq(t, "POST", "http://"+one+"/v1/sessions/"+s.id+"/start", ""); r.Status != 200 {
			t.Fatalf("start: %d %s", r.Status, r.Body)
		}
	}

	got := map[string][]servertest.TimeMsg{}
	collect := func(until time.Time, want int) {
		t.Helper()
		count := func() int {
			c := 0
			for _, v := range got {
				c += len(v)
			}
			return c
		}
		for count() < want {
			var m *redis.Message
			select {
			case m = <-msgs:
			case <-time.After(time.Until(until)):
				t.Fatalf("%d of %d TIME_EXPIRED: none by the deadline", count(), want)
			}
			var te servertest.TimeMsg
			if err := json.Unmarshal([]byte(m.Payload), &te); err != nil {
				t.Fatal(err)
			}
			got[te.SessionID] = append(got[te.SessionID], te)
		}
	}
	collect(time.Now().Add(10*time.Second), n)
	killOne() // the late deadlines are pending; nobody hands them over
	collect(time.Now().Add(15*time.Second), 2*n)
	time.Sleep(300 * time.Millisecond) // room for a duplicate
	for extra := true; extra; {
		select {
		case m := <-msgs:
			t.Errorf("extra message %s", m.Payload)
		case <-time.After(50 * time.Millisecond):
			extra = false
		}
	}
	for _, s := range all {
		msgs := got[s.id]
		if len(msgs) != 1 {
			t.Fatalf("%s: %d TIME_EXPIRED", s.id, len(msgs))
		}
		if m := msgs[0]; m.Type != "TIME_EXPIRED" || m.ParticipantID == nil || *m.ParticipantID != s.p0 || m.Version != 3 {
			t.Errorf("TIME_EXPIRED %+v", m)
		}
	}
	// the clients on both instances got the state, then TIME_EXPIRED
	for _, c := range []*websocket.Conn{wsA, wsB} {
		for {
			m := servertest.WSRead(t, c)
			if m.Type == "TIME_EXPIRED" {
				if m.Version != 3 || m.SessionID != early[0].id {
					t.Errorf("WebSocket TIME_EXPIRED %s", m.Raw)
				}
				break
			}
		}
	}
	r := doReq(t, "GET", "http://"+two+"/v1/sessions/"+late[0].id, "")
	var st struct {
		Participants []struct {
			HasExpired bool  `json:"has_expired"`
			IsActive   bool  `json:"is_active"`
			TimeUsedMS int64 `json:"time_used_ms"`
		} `json:"participants"`
	}
	b, _ := json.Marshal(r.State(t))
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Participants[0].HasExpired || st.Participants[0].TimeUsedMS != int64(late[0].bank) || !st.Participants[1].IsActive {
		t.Errorf("late session after the expiry: %s", r.Body)
	}
}
