package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/persist"
	"github.com/synckairos/synckairos/pgtest"
	"github.com/synckairos/synckairos/servertest"
)

// eventsStore returns a persist.Store on the machine's PostgreSQL, in a
// schema of the test's own, holding 3 events of session evSID.
const evSID = "6f1c2d3e-1111-4222-8333-4444555566e1"

func eventsStore(t *testing.T) (*persist.Store, func()) {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "handlers_t_" + hex.EncodeToString(b)
	pool, err := persist.Open(ctx, pgtest.Via("", schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A connection of its own: the test closes the pool on purpose.
		if c, err := pgx.Connect(context.Background(), pgtest.URL()); err == nil {
			_, _ = c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			_ = c.Close(context.Background())
		}
		pool.Close()
	})
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	if _, err := persist.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO sync_sessions (session_id, last_updated_at, final_status, last_version)
		VALUES ($1, now(), 'running', 3)`, evSID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO sync_events (session_id, version, event_type, "timestamp", state_snapshot, metadata)
		SELECT $1, v, (ARRAY['session_created','session_started','cycle_switched'])[v],
			timestamptz '2026-11-25 19:04:05.123+00' + v * interval '1 second', jsonb_build_object('version', v),
			'{"state_kind":"full"}' FROM generate_series(1, 3) v`, evSID)
	if err != nil {
		t.Fatal(err)
	}
	return persist.NewStore(pool), pool.Close
}

func TestEventsList(t *testing.T) {
	t.Parallel()
	store, closePool := eventsStore(t)
	h := NewEvents(context.Background(), store, &Errors{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tests := []struct {
		name     string
		id, q    string
		status   int
		code     string
		versions []int64
		next     *int64
	}{
		{"first page", evSID, "limit=2", 200, "", []int64{1, 2}, ptr(int64(2))},
		{"next page", evSID, "after_version=2&limit=2", 200, "", []int64{3}, nil},
		{"defaults", evSID, "", 200, "", []int64{1, 2, 3}, nil},
		{"past the end", evSID, "after_version=3", 200, "", []int64{}, nil},
		{"unknown session", "6f1c2d3e-1111-4222-8333-4444555566e2", "", 404, "SESSION_NOT_FOUND", nil, nil},
		{"bad id", "nope", "", 400, "VALIDATION_ERROR", nil, nil},
		{"limit zero", evSID, "limit=0", 400, "VALIDATION_ERROR", nil, nil},
		{"limit too big", evSID, "limit=1001", 400, "VALIDATION_ERROR", nil, nil},
		{"limit not a number", evSID, "limit=ten", 400, "VALIDATION_ERROR", nil, nil},
		{"negative after_version", evSID, "after_version=-1", 400, "VALIDATION_ERROR", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := get(h, tc.id, tc.q)
			if ctx.Response.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d: %s", ctx.Response.StatusCode(), tc.status, ctx.Response.Body())
			}
			if tc.code != "" {
				if !strings.Contains(string(ctx.Response.Body()), `"code":"`+tc.code+`"`) {
					t.Fatalf("body %s, want code %s", ctx.Response.Body(), tc.code)
				}
				return
			}
			var page servertest.EventsPage
			if err := json.Unmarshal(ctx.Response.Body(), &page); err != nil {
				t.Fatalf("%v: %s", err, ctx.Response.Body())
			}
			got := []int64{}
			for _, e := range page.Data {
				got = append(got, e.Version)
			}
			if len(got) != len(tc.versions) || (tc.next == nil) != (page.Next == nil) ||
				(tc.next != nil && *tc.next != *page.Next) {
				t.Fatalf("versions %v next %v, want %v next %v", got, page.Next, tc.versions, tc.next)
			}
			for i := range got {
				if got[i] != tc.versions[i] {
					t.Fatalf("versions %v, want %v", got, tc.versions)
				}
			}
			if len(page.Data) > 0 && page.Data[0].Timestamp != "2026-11-25T19:04:0"+string(rune('5'+page.Data[0].Version))+".123Z" {
				t.Errorf("timestamp %q", page.Data[0].Timestamp)
			}
		})
	}
	// PostgreSQL gone: a 500 through the one error writer.
	closePool()
	if ctx := get(h, evSID, ""); ctx.Response.StatusCode() != 500 {
		t.Fatalf("with the pool closed: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func ptr[T any](v T) *T { return &v }

func get(h *Events, id, q string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/sessions/" + id + "/events?" + q)
	ctx.SetUserValue("id", id)
	h.List(&ctx)
	return &ctx
}

func TestReadySoftCheck(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	tests := []struct {
		name   string
		checks []Check
		status int
		body   string
	}{
		{"all ok", []Check{{Name: "redis", Fn: ok}, {Name: "persistence", Fn: ok, Soft: true}}, 200, `"status":"ready"`},
		{"persistence degraded", []Check{{Name: "redis", Fn: ok}, {Name: "persistence", Fn: down, Soft: true}}, 200,
			`"status":"degraded","degraded":["persistence"]`},
		{"redis down wins", []Check{{Name: "redis", Fn: down}, {Name: "persistence", Fn: down, Soft: true}}, 503,
			`"status":"unavailable","failed":["redis"],"degraded":["persistence"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			Ready(&tc.checks, time.Second, false)(&ctx)
			if ctx.Response.StatusCode() != tc.status || !strings.Contains(string(ctx.Response.Body()), tc.body) {
				t.Fatalf("%d %s, want %d with %s", ctx.Response.StatusCode(), ctx.Response.Body(), tc.status, tc.body)
			}
		})
	}
}
