package persist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// pgAddr is the tests' PostgreSQL (pgtest: DATABASE_TEST_URL); every test
// works in a schema of its own.
var pgAddr = pgtest.Addr()

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

func quietLog() *slog.Logger {
	if os.Getenv("PERSIST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testDB creates a fresh schema, applies the migrations in it and returns
// a pool whose connections go to addr (the real server or a proxy in front
// of it) with that schema as search_path.
type testDB struct {
	schema string
	admin  *pgxpool.Pool // direct, never proxied: for assertions
}

func newTestDB(t testing.TB) *testDB {
	t.Helper()
	schema, admin := emptySchema(t)
	if _, err := Migrate(context.Background(), admin); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return &testDB{schema: schema, admin: admin}
}

// emptySchema creates a schema with no tables (the test or the service
// migrates it) and returns its name and a direct pool on it for assertions.
func emptySchema(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	schema := "persist_t_" + randHex(6)
	admin, err := pgxpool.New(ctx, dbURL(pgAddr, schema))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	return schema, admin
}

func dbURL(addr, schema string) string { return pgtest.Via(addr, schema) }

func (d *testDB) pool(t testing.TB, addr string) *pgxpool.Pool {
	t.Helper()
	p, err := Open(context.Background(), dbURL(addr, d.schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func (d *testDB) count(t testing.TB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.admin.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// startRedis runs a redis-server of the test's own on a free port, so the
// test controls its streams exactly and never touches the shared 6379.
func startRedis(t testing.TB) *redis.Client {
	t.Helper()
	addr, _ := servertest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// setup gives a test its own Redis, its own schema and a script driver
// whose streams keep eventCap entries.
func setup(t testing.TB, eventCap int) (*redis.Client, *testDB, *driver) {
	t.Helper()
	rdb := startRedis(t)
	return rdb, newTestDB(t), newDriver(t, rdb, eventCap)
}

// must fails the test on a setup step's error.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newProxy is a cuttable TCP relay in front of target (servertest.Proxy).
func newProxy(t testing.TB, target string) *servertest.Proxy { return servertest.NewProxy(t, target) }

// driver runs the real scripts through the engine, as the service does.
type driver struct {
	e   *engine.Engine
	rdb redis.UniversalClient
}

func newDriver(t testing.TB, rdb redis.UniversalClient, eventCap int) *driver {
	t.Helper()
	e := engine.New(rdb, engine.Options{EventCap: int64(eventCap)})
	if err := e.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &driver{e: e, rdb: rdb}
}

// config: n participants of 10 minutes each, per_participant.
func (d *driver) config(id string, n int) *session.Config {
	c := &session.Config{ID: id, SyncMode: session.ModePerParticipant, Metadata: []byte(`{"game":"chess"}`)}
	for i := 0; i < n; i++ {
		c.Participants = append(c.Participants, session.Participant{ID: newUUID(), Index: int64(i), TotalTimeMS: 600000})
	}
	return c
}

func (d *driver) create(ctx context.Context, id string, n int) error {
	_, err := d.e.Create(ctx, d.config(id, n))
	return err
}

// sessions creates n sessions of participants each and runs ops on each
// in turn, failing tb on an error; it returns their ids.
func (d *driver) sessions(ctx context.Context, tb testing.TB, n, participants int, ops ...string) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newUUID()
		must(tb, d.create(ctx, ids[i], participants))
		for _, op := range ops {
			must(tb, d.op(ctx, op, ids[i]))
		}
	}
	return ids
}

// session is one of sessions.
func (d *driver) session(ctx context.Context, tb testing.TB, participants int, ops ...string) string {
	tb.Helper()
	return d.sessions(ctx, tb, 1, participants, ops...)[0]
}

// op runs the transition the script op names, with no expected version;
// a switch passes to the next by index.
func (d *driver) op(ctx context.Context, name, id string) error {
	var err error
	switch name {
	case "startSession":
		_, err = d.e.Start(ctx, id, 0)
	case "switchCycle":
		_, err = d.e.Switch(ctx, id, session.SwitchArgs{})
	case "pauseSession":
		_, err = d.e.Pause(ctx, id, 0)
	case "resumeSession":
		_, err = d.e.Resume(ctx, id, 0)
	case "completeSession":
		_, err = d.e.Complete(ctx, id, 0)
	case "deleteSession":
		_, err = d.e.Delete(ctx, id, 0)
	case "expireSession":
		_, err = d.e.Expire(ctx, id)
	default:
		err = errors.New("no op " + name)
	}
	return err
}

// run starts w in the background and returns a stop that cancels it and
// waits, reporting what Run returned.
func run(w *Worker) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func testConfig() Config {
	return Config{Poll: 50 * time.Millisecond, ClaimIdle: 200 * time.Millisecond,
		ClaimEvery: 50 * time.Millisecond, LagEvery: 20 * time.Millisecond, Lanes: 2, RetryMax: 100 * time.Millisecond,
		WriteTimeout: 5 * time.Second}
}

func streamLen(t testing.TB, rdb redis.Cmdable) int64 {
	t.Helper()
	var n int64
	for _, s := range keyspace.Streams() {
		l, err := rdb.XLen(context.Background(), s).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += l
	}
	return n
}
