package expiry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
	"github.com/synckairos/synckairos/redisconn"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
	"github.com/synckairos/synckairos/sessiontest"
)

// The tests drive the real scripts from ../lua on the machine's Redis, with
// a private deadline index per test (the same hash tags), so a server's
// scheduler running elsewhere on that Redis never sees these sessions.

// sessions deletes every session the tests' scripts touch when the test
// ends, and TestMain fails the run if one is left without a TTL anyway.
var sessions = sessiontest.New(servertest.RedisAddr())

func TestMain(m *testing.M) { servertest.RunMain(m, sessions.Run) }

// env drives the real scripts through the engine, on a private deadline
// index (suffix) that only this test's schedulers poll.
type env struct {
	t      *testing.T
	rdb    redis.UniversalClient
	clock  *redisclock.Clock
	suffix string
	eng    *engine.Engine
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr(), PoolSize: 64})
	rdb.AddHook(sessions.Hook(t))
	t.Cleanup(func() { rdb.Close() })
	return newEnvOn(t, rdb, 0)
}

// newEnvOn is an env on rdb whose engine records audit events up to
// eventCap per shard (0: none, as on the shared Redis).
func newEnvOn(t *testing.T, rdb redis.UniversalClient, eventCap int64) *env {
	t.Helper()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	e := &env{t: t, rdb: rdb, clock: redisclock.New(rdb), suffix: ":test:" + uuid.NewString()}
	if err := e.clock.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e.eng = engine.New(rdb, engine.Options{DeadlineSuffix: e.suffix, EventCap: eventCap})
	if err := e.eng.Load(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := range keyspace.Shards {
			rdb.Del(context.Background(), keyspace.Deadlines(i)+e.suffix)
		}
	})
	return e
}

// Expire is the engine's expiry: the Expirer main wires.
func (e *env) Expire(ctx context.Context, id string) (bool, error) { return e.eng.Expire(ctx, id) }

// running starts a per_participant session of two participants whose
// first has bankMS, with auto_advance.
func (e *env) running(bankMS int) string {
	e.t.Helper()
	ctx := context.Background()
	id := uuid.NewString()
	c := &session.Config{ID: id, SyncMode: session.ModePerParticipant, AutoAdvance: true, Participants: []session.Participant{
		{ID: uuid.NewString(), Index: 0, TotalTimeMS: int64(bankMS)}, {ID: uuid.NewString(), Index: 1, TotalTimeMS: 600000}}}
	if _, err := e.eng.Create(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.eng.Start(ctx, id, 0); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// listen collects the TIME_EXPIRED messages of the given sessions.
func (e *env) listen(ids []string) *servertest.TimeWatch {
	e.t.Helper()
	chans := make([]string, len(ids))
	for i, id := range ids {
		chans[i] = keyspace.For(id).MsgChannel
	}
	return servertest.WatchTime(e.t, e.rdb, chans...)
}

// schedulers runs n schedulers (n instances) on e's deadline index, each
// polling every poll, until stop, which returns once they all have.
func (e *env) schedulers(n int, poll time.Duration) (scheds []*Scheduler, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	scheds = make([]*Scheduler, n)
	for i := range scheds {
		scheds[i] = New(e.rdb, e, e.clock, Config{Poll: poll, DeadlineSuffix: e.suffix}, quiet())
		wg.Go(func() { scheds[i].Run(ctx) })
	}
	return scheds, func() { cancel(); wg.Wait() }
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestSchedulersFireEachDeadlineOnce: four schedulers (four instances) poll
// the same index; every session's deadline fires exactly one TIME_EXPIRED,
// after the deadline, and the next participant takes over.
func TestSchedulersFireEachDeadlineOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.running(20 + 10*i) // staggered deadlines
	}
	got := e.listen(ids)
	scheds, stop := e.schedulers(4, 2*time.Millisecond)
	servertest.WaitFor(t, 10*time.Second, "every TIME_EXPIRED", func() bool { return len(got.BySession()) == n })
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
	stop()
	var fired uint64
	for _, s := range scheds {
		fired += s.fired.Get()
	}
	if fired != n {
		t.Errorf("schedulers fired %d expiries, want %d", fired, n)
	}
	for _, id := range ids {
		msgs := got.BySession()[id]
		if len(msgs) != 1 {
			t.Fatalf("%s: %d TIME_EXPIRED", id, len(msgs))
		}
		m := msgs[0]
		if m.Type != "TIME_EXPIRED" || m.ParticipantID == nil || m.Version != 3 {
			t.Errorf("message %+v", m)
		}
		st := state(t, e, id)
		p0 := st.Participants[0]
		if !p0.HasExpired || p0.TotalTimeMS != 0 || p0.TimeRemainingMS != 0 || p0.IsActive ||
			*m.ParticipantID != p0.ParticipantID || !st.Participants[1].IsActive || st.Status != "running" {
			t.Errorf("state after expiry: %+v", st)
		}
		// the deadline fired no earlier than it was due
		if m.Timestamp < st.StartedAt.UnixMilli()+p0.TimeUsedMS {
			t.Errorf("fired at %d, due at %d", m.Timestamp, st.StartedAt.UnixMilli()+p0.TimeUsedMS)
		}
	}
	// the index now holds the next turns' deadlines, not the fired ones
	for _, id := range ids {
		score, err := e.rdb.ZScore(context.Background(), keyspace.Deadlines(keyspace.ShardOf(id))+e.suffix, id).Result()
		if err != nil || int64(score) < nowMS(e)+500000 {
			t.Errorf("%s: index score %v (%v), want the second participant's 10-minute deadline", id, score, err)
		}
	}
}

// TestExpireConcurrentOneWinner: 50 goroutines run expireSession on one due
// session at once; exactly one applies it and one TIME_EXPIRED goes out.
func TestExpireConcurrentOneWinner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.running(5)
	got := e.listen([]string{id})
	time.Sleep(10 * time.Millisecond)
	var fired atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ok, err := e.Expire(context.Background(), id)
			if err != nil {
				t.Error(err)
			}
			if ok {
				fired.Add(1)
			}
		})
	}
	wg.Wait()
	if fired.Load() != 1 {
		t.Fatalf("%d runs applied the expiry, want 1", fired.Load())
	}
	servertest.WaitFor(t, 10*time.Second, "TIME_EXPIRED", func() bool { return len(got.BySession()[id]) >= 1 })
	time.Sleep(50 * time.Millisecond)
	if n := len(got.BySession()[id]); n != 1 {
		t.Errorf("%d TIME_EXPIRED", n)
	}
}

// TestExpireEarlyIsANoop: before the deadline the script changes nothing
// but puts the true deadline back in the index; for a gone session it
// removes the entry.
func TestExpireEarlyIsANoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.running(60000)
	key := keyspace.Deadlines(keyspace.ShardOf(id)) + e.suffix
	want, _ := e.rdb.ZScore(ctx, key, id).Result()
	e.rdb.ZAdd(ctx, key, redis.Z{Score: 1, Member: id}) // a stale, early score
	before := state(t, e, id)
	if ok, err := e.Expire(ctx, id); ok || err != nil {
		t.Fatalf("early expire: %v %v", ok, err)
	}
	if got, _ := e.rdb.ZScore(ctx, key, id).Result(); got != want {
		t.Errorf("index score %v, want %v", got, want)
	}
	if after := state(t, e, id); after.Version != before.Version {
		t.Errorf("early expire changed the session: v%d -> v%d", before.Version, after.Version)
	}
	gone := uuid.NewString()
	e.rdb.ZAdd(ctx, keyspace.Deadlines(keyspace.ShardOf(gone))+e.suffix, redis.Z{Score: 1, Member: gone})
	if ok, err := e.Expire(ctx, gone); ok || err != nil {
		t.Fatalf("gone session: %v %v", ok, err)
	}
	if _, err := e.rdb.ZScore(ctx, keyspace.Deadlines(keyspace.ShardOf(gone))+e.suffix, gone).Result(); err != redis.Nil {
		t.Errorf("entry of a gone session left in the index: %v", err)
	}
}

// TestTickShards: a due entry in every shard's index is seen in one tick;
// a shard whose read fails (here its index holds the wrong type; on a
// Cluster, a node failing over) costs one counted error, and the other
// shards' due ids still run in that tick.
func TestTickShards(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		broken int // the shard whose read fails; -1 for none
	}{{"every shard read", -1}, {"one shard failing", 0}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			var mu sync.Mutex
			seen := map[string]bool{}
			rec := expirerFunc(func(_ context.Context, id string) (bool, error) {
				mu.Lock()
				seen[id] = true
				mu.Unlock()
				return false, nil
			})
			for i := range keyspace.Shards {
				if i == c.broken {
					e.rdb.Set(ctx, keyspace.Deadlines(i)+e.suffix, "not a sorted set", 0)
					continue
				}
				e.rdb.ZAdd(ctx, keyspace.Deadlines(i)+e.suffix, redis.Z{Score: 1, Member: idOnShard(i)})
			}
			s := New(e.rdb, rec, e.clock, Config{DeadlineSuffix: e.suffix}, quiet())
			s.Tick(ctx)
			wantSeen, wantErrs := keyspace.Shards, uint64(0)
			if c.broken >= 0 {
				wantSeen, wantErrs = keyspace.Shards-1, 1
			}
			if len(seen) != wantSeen || s.errs.Get() != wantErrs {
				t.Errorf("one tick saw %d shards' due ids and %d errors, want %d and %d",
					len(seen), s.errs.Get(), wantSeen, wantErrs)
			}
		})
	}
}

// idOnShard returns a new session id of the shard.
func idOnShard(shard int) string {
	for {
		if id := uuid.NewString(); keyspace.ShardOf(id) == shard {
			return id
		}
	}
}

type expirerFunc func(ctx context.Context, id string) (bool, error)

func (f expirerFunc) Expire(ctx context.Context, id string) (bool, error) { return f(ctx, id) }

type partState struct {
	ParticipantID   string `json:"participant_id"`
	TotalTimeMS     int64  `json:"total_time_ms"`
	TimeUsedMS      int64  `json:"time_used_ms"`
	TimeRemainingMS int64  `json:"time_remaining_ms"`
	IsActive        bool   `json:"is_active"`
	HasExpired      bool   `json:"has_expired"`
}

type sessState struct {
	Status       string      `json:"status"`
	Version      int64       `json:"version"`
	StartedAt    *time.Time  `json:"session_started_at"`
	Participants []partState `json:"participants"`
}

// state reads the session through the engine.
func state(t *testing.T, e *env, id string) sessState {
	t.Helper()
	raw, err := e.eng.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var st sessState
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func nowMS(e *env) int64 { return e.clock.Now() / 1000 }

// TestErrorsAreCountedAndRetried: a failing expiry stays due and is tried
// again next poll; an unreachable Redis costs one counted error per poll.
func TestErrorsAreCountedAndRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := uuid.NewString()
	e.rdb.ZAdd(context.Background(), keyspace.Deadlines(keyspace.ShardOf(id))+e.suffix, redis.Z{Score: 1, Member: id})
	var calls atomic.Int64
	failing := expirerFunc(func(context.Context, string) (bool, error) {
		calls.Add(1)
		return false, errors.New("STREAM_FULL")
	})
	s := New(e.rdb, failing, e.clock, Config{DeadlineSuffix: e.suffix}, quiet())
	s.Tick(context.Background())
	s.Tick(context.Background())
	if calls.Load() != 2 || s.errs.Get() != 2 {
		t.Errorf("calls %d, errors %d; want 2 and 2", calls.Load(), s.errs.Get())
	}

	// A full batch whose every expiry fails is no reason to go again at
	// once: Run waits for the next poll rather than spin against a
	// refusing Redis; a full batch with progress goes again.
	for i := range 4 {
		e.rdb.ZAdd(context.Background(), keyspace.Deadlines(0)+e.suffix, redis.Z{Score: float64(1 + i), Member: uuid.NewString()})
	}
	s = New(e.rdb, failing, e.clock, Config{Batch: 4, DeadlineSuffix: e.suffix}, quiet())
	if s.Tick(context.Background()) {
		t.Error("a full batch of failures asks for another round at once")
	}
	working := expirerFunc(func(context.Context, string) (bool, error) { return false, nil })
	s = New(e.rdb, working, e.clock, Config{Batch: 4, DeadlineSuffix: e.suffix}, quiet())
	if !s.Tick(context.Background()) {
		t.Error("a full batch that made progress does not ask for another round")
	}

	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { down.Close() })
	s = New(down, failing, e.clock, Config{Timeout: 200 * time.Millisecond, DeadlineSuffix: e.suffix}, quiet())
	if s.Tick(context.Background()) || s.errs.Get() != 1 {
		t.Errorf("unreachable Redis: errors %d", s.errs.Get())
	}
}

// TestExpiryOnBackends: a session on every shard whose turn runs out is
// expired by the schedulers' poll, once, on the single Redis and on a real
// 3-master Cluster (the poll's pipeline split per node). It asserts on the
// state and, where audit events are on, on the shard's stream, not on
// Pub/Sub (the channel's kind depends on the deployment).
func TestExpiryOnBackends(t *testing.T) {
	for _, be := range []struct {
		name string
		env  func(t *testing.T) *env
	}{
		{"redis", newEnv},
		{"cluster", func(t *testing.T) *env {
			c := servertest.SharedCluster(t)
			rdb, err := redisconn.Open(redisconn.Config{ClusterAddrs: c.Addrs, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rdb.Close() })
			return newEnvOn(t, rdb, 1000) // a private Cluster: its streams are this test's
		}},
	} {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := be.env(t)
			ids := make([]string, keyspace.Shards)
			for shard := range ids {
				ids[shard] = idOnShard(shard)
			}
			ctx := context.Background()
			for i, id := range ids {
				c := &session.Config{ID: id, SyncMode: session.ModePerParticipant, AutoAdvance: true, Participants: []session.Participant{
					{ID: uuid.NewString(), Index: 0, TotalTimeMS: int64(30 + 5*i)}, {ID: uuid.NewString(), Index: 1, TotalTimeMS: 600000}}}
				if _, err := e.eng.Create(ctx, c); err != nil {
					t.Fatal(err)
				}
				if _, err := e.eng.Start(ctx, id, 0); err != nil {
					t.Fatal(err)
				}
			}
			scheds, stop := e.schedulers(2, 5*time.Millisecond)
			servertest.WaitFor(t, 10*time.Second, "every session expired", func() bool {
				for _, id := range ids {
					if st := state(t, e, id); st.Version != 3 {
						return false
					}
				}
				return true
			})
			stop()
			var fired, errs uint64
			for _, s := range scheds {
				fired, errs = fired+s.fired.Get(), errs+s.errs.Get()
			}
			if fired != uint64(len(ids)) || errs != 0 {
				t.Errorf("fired %d expiries with %d errors, want %d and 0", fired, errs, len(ids))
			}
			for _, id := range ids {
				st := state(t, e, id)
				if p := st.Participants; st.Status != "running" || !p[0].HasExpired || p[0].IsActive || !p[1].IsActive {
					t.Errorf("%s after expiry: %+v", id, st)
				}
				if e.eng.EventCap() == 0 {
					continue
				}
				evs, err := e.rdb.XRange(ctx, keyspace.For(id).Stream, "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				expired := 0
				for _, m := range evs {
					if m.Values["session_id"] == id && m.Values["type"] == "participant_expired" {
						expired++
					}
				}
				if expired != 1 {
					t.Errorf("%s: %d participant_expired events in its stream, want 1", id, expired)
				}
			}
		})
	}
}
