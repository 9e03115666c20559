package persist

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
)

// TestActorRecorded: an entry's actor field (the caller's sub) lands in
// sync_events.actor and in the events route; an entry without one is NULL.
// The start's entry is the script's own, given an actor by hand (and
// written back field per field, the layout before the packed event).
func TestActorRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, db, d := setup(t, 1000)
	id := d.session(ctx, t, 2, "startSession")
	stream := keyspace.For(id).Stream
	entries, err := rdb.XRange(ctx, stream, "-", "+").Result()
	if err != nil || len(entries) != 2 {
		t.Fatalf("entries %v %v", entries, err)
	}
	start := entries[1]
	fields, err := Fields(start.Values)
	must(t, err)
	values := []any{}
	for k, v := range fields {
		if k != "actor" {
			values = append(values, k, v)
		}
	}
	values = append(values, "actor", "host-alice")
	must(t, rdb.XDel(ctx, stream, start.ID).Err())
	must(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: values}).Err())
	pool := db.pool(t, pgAddr)
	stop := run(NewWorker(rdb, pool, quietLog(), testConfig()))
	defer stop()
	servertest.WaitFor(t, 10*time.Second, "events written", func() bool {
		return db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = $1`, id) == 2
	})
	if n := db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = $1 AND version = 2 AND actor = 'host-alice'`, id); n != 1 {
		t.Fatal("start's actor not recorded")
	}
	if n := db.count(t, `SELECT count(*) FROM sync_events WHERE session_id = $1 AND version = 1 AND actor IS NULL`, id); n != 1 {
		t.Fatal("create without actor is not NULL")
	}
	body, found, err := NewStore(pool).Events(ctx, id, 0, 10)
	if err != nil || !found {
		t.Fatal(found, err)
	}
	if !strings.Contains(string(body), `"actor" : null`) && !strings.Contains(string(body), `"actor":null`) ||
		!strings.Contains(string(body), `"actor" : "host-alice"`) && !strings.Contains(string(body), `"actor":"host-alice"`) {
		t.Fatalf("events body lacks the actors: %s", body)
	}
}
