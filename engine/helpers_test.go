package engine

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/persist"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
	"github.com/synckairos/synckairos/sessiontest"
)

// testEventCap is large enough that the shared shard streams never refuse a
// test's transition, yet makes every script append its audit event.
const testEventCap = 100_000_000

func newTestClient(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
	rdb.AddHook(sessions.Hook(t)) // every session its scripts touch is deleted when t ends
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", servertest.RedisAddr(), err)
	}
	return rdb
}

func newTestScripts(t testing.TB) (*Engine, *redis.Client) {
	t.Helper()
	rdb := newTestClient(t)
	// a private deadline index: no expiry scheduler of a server running on
	// the same Redis touches these sessions
	s := New(rdb, Options{EventCap: testEventCap, StateCacheMax: 1000, DeadlineSuffix: ":test:" + uuid.NewString()})
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := range keyspace.Shards {
			cleanupRDB.Del(context.Background(), keyspace.Deadlines(i)+s.dlSuffix)
		}
	})
	return s, rdb
}

// State mirrors the v1 state for assertions.
type State struct {
	SessionID            string          `json:"session_id"`
	SyncMode             string          `json:"sync_mode"`
	Status               string          `json:"status"`
	Version              int64           `json:"version"`
	ActiveParticipantID  *string         `json:"active_participant_id"`
	TotalTimeMS          int64           `json:"total_time_ms"`
	TimePerCycleMS       *int64          `json:"time_per_cycle_ms"`
	IncrementMS          *int64          `json:"increment_ms"`
	MaxTimeMS            *int64          `json:"max_time_ms"`
	AutoAdvance          bool            `json:"auto_advance"`
	Metadata             json.RawMessage `json:"metadata"`
	CycleStartedAt       *time.Time      `json:"cycle_started_at"`
	SessionStartedAt     *time.Time      `json:"session_started_at"`
	SessionCompletedAt   *time.Time      `json:"session_completed_at"`
	CreatedAt            time.Time       `json:"created_at"`
	UpdatedAt            time.Time       `json:"updated_at"`
	ServerTimeMS         int64           `json:"server_time_ms"`
	ExpiredParticipantID *string         `json:"expired_participant_id"`
	Participants         []Participant   `json:"participants"`
	// mode-specific heads: global's bank, per_group's banks
	TimeRemainingMS  *int64           `json:"time_remaining_ms"`
	GroupRemainingMS map[string]int64 `json:"group_remaining_ms"`
}

type Participant struct {
	ParticipantID    string  `json:"participant_id"`
	ParticipantIndex int64   `json:"participant_index"`
	TotalTimeMS      int64   `json:"total_time_ms"`
	TimeUsedMS       int64   `json:"time_used_ms"`
	TimeRemainingMS  int64   `json:"time_remaining_ms"`
	CycleCount       int64   `json:"cycle_count"`
	IsActive         bool    `json:"is_active"`
	HasExpired       bool    `json:"has_expired"`
	GroupID          *string `json:"group_id"`
}

// decode unmarshals b (a state, a published message…) as a T, failing t
// with the bytes when it does not parse.
func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, b)
	}
	return v
}

// ms returns a time's epoch milliseconds (0 for nil).
func ms(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}

func ptr[T any](v T) *T { return &v }

// cleanupRDB removes what tests leave in the shared Redis besides sessions
// (private deadline indexes, streams).
var cleanupRDB = redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})

// sessions deletes each session a test creates on the machine's Redis when
// the test ends (running sessions never expire), and TestMain fails the run
// if one was left without a TTL anyway. newTestClient's hook tracks every
// session its scripts touch; doReq every session an HTTP create made.
var sessions = sessiontest.New(servertest.RedisAddr())

func TestMain(m *testing.M) { servertest.RunMain(m, sessions.Run) }

// newConfig returns a config with n participants, each with bank ms; its
// keys are deleted when the test ends.
func newConfig(t testing.TB, mode string, n int, bank int64) *session.Config {
	c := &session.Config{ID: uuid.NewString(), SyncMode: mode}
	sessions.Track(t, c.ID) // whichever client creates it
	for i := 0; i < n; i++ {
		c.Participants = append(c.Participants, session.Participant{ID: uuid.NewString(), Index: int64(i), TotalTimeMS: bank})
	}
	return c
}

// mustCreate creates c and returns its state.
func mustCreate(t testing.TB, s *Engine, c *session.Config) State {
	t.Helper()
	b, err := s.Create(context.Background(), c)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return decode[State](t, b)
}

// running creates and starts a session of n participants.
func running(t testing.TB, s *Engine, mode string, n int, bank int64) (*session.Config, State) {
	t.Helper()
	c := newConfig(t, mode, n, bank)
	mustCreate(t, s, c)
	b, err := s.Start(context.Background(), c.ID, 0)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return c, decode[State](t, b)
}

var serverTimeRe = regexp.MustCompile(`"server_time_ms":\d+`)

// maskServerTime blanks the one field that differs between two reads of
// the same version.
func maskServerTime(b []byte) string {
	return serverTimeRe.ReplaceAllString(string(b), `"server_time_ms":0`)
}

// watcher records what is published on a session's state channel.
type watcher struct {
	rdb *redis.Client
	ps  *redis.PubSub
	ch  string
}

func watch(t testing.TB, rdb *redis.Client, id string) *watcher {
	t.Helper()
	ch := keyspace.For(id).StateChannel
	ps := rdb.SSubscribe(context.Background(), ch)
	t.Cleanup(func() { ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &watcher{rdb: rdb, ps: ps, ch: ch}
}

// drain returns every message published since the last drain, a packed
// message rendered as the relay's STATE_UPDATE or as a STATE_DELTA
// (renderMessage). It publishes a marker of its own and reads up to it, so
// it needs no sleep: a script publishes before it replies.
func (w *watcher) drain(t testing.TB) [][]byte {
	t.Helper()
	mark := "mark-" + uuid.NewString()
	if err := w.rdb.SPublish(context.Background(), w.ch, mark).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out [][]byte
	for {
		m, err := w.ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("pubsub: %v", err)
		}
		if m.Payload == mark {
			return out
		}
		msg, err := renderMessage(m.Payload)
		if err != nil {
			t.Fatalf("published %q: %v", m.Payload, err)
		}
		out = append(out, []byte(msg))
	}
}

// streamMark returns the id of the newest entry of a stream ("0-0" when
// empty); entries appended later have greater ids.
func streamMark(t testing.TB, rdb *redis.Client, stream string) string {
	t.Helper()
	xs, err := rdb.XRevRangeN(context.Background(), stream, "+", "-", 1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) == 0 {
		return "0-0"
	}
	return xs[0].ID
}

// eventsSince returns the entries of session id appended after mark, in
// the field-per-field layout (persist.Fields).
func eventsSince(t testing.TB, rdb *redis.Client, stream, mark, id string) []redis.XMessage {
	t.Helper()
	xs, err := rdb.XRange(context.Background(), stream, "("+mark, "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []redis.XMessage
	for _, x := range xs {
		if x.Values["session_id"] == id {
			var err error
			if x.Values, err = persist.Fields(x.Values); err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
	}
	return out
}

// envelope is a published STATE_UPDATE, STATE_DELTA or SESSION_DELETED.
type envelope struct {
	Type      string          `json:"type"`
	SessionID string          `json:"sessionId"`
	Timestamp int64           `json:"timestamp"`
	Version   int64           `json:"version"`
	State     json.RawMessage `json:"state"`
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// errDetails decodes a *session.Error's details into a map.
func errDetails(t testing.TB, err error) (string, map[string]any) {
	t.Helper()
	se, ok := err.(*session.Error)
	if !ok {
		t.Fatalf("error %T %v is not a *session.Error", err, err)
	}
	var d map[string]any
	if len(se.Details) > 0 {
		if e := json.Unmarshal(se.Details, &d); e != nil {
			t.Fatalf("details %s: %v", se.Details, e)
		}
	}
	return se.Code, d
}

func hasPrefix(b []byte, p string) bool { return strings.HasPrefix(string(b), p) }
