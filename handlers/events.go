package handlers

import (
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/session"
)

// EventStore reads a session's recorded history from PostgreSQL; main wires
// *persist.Store into it. Events returns the whole response body,
// {"data":[...],"next_after_version":N|null}, and found=false when nothing
// was ever recorded for the session.
type EventStore interface {
	Events(ctx context.Context, id string, afterVersion int64, limit int) (body []byte, found bool, err error)
}

// Page sizes of GET /v1/sessions/{id}/events.
const (
	EventsPageDefault = 100
	EventsPageMax     = 1000
)

// Events serves GET /v1/sessions/{id}/events?after_version=&limit=.
type Events struct {
	store   EventStore
	ctx     context.Context // see Sessions.ctx
	errs    *Errors
	timeout time.Duration
}

// NewEvents serves store; ctx bounds every query, as for Sessions. A nil
// store (no DATABASE_URL) answers 503 PERSISTENCE_DISABLED, so the route
// exists on every instance and a user learns why, not "route not found".
func NewEvents(ctx context.Context, store EventStore, errs *Errors) *Events {
	return &Events{store: store, ctx: ctx, errs: errs, timeout: 5 * time.Second}
}

// List answers one page of the session's events, oldest first, with
// versions above after_version (default 0); next_after_version is the
// after_version of the next page, null on the last one.
func (e *Events) List(ctx *fasthttp.RequestCtx) {
	if e.store == nil {
		e.errs.Write(ctx, codeError(CodePersistenceDisabled))
		return
	}
	id, ok := pathID(ctx, e.errs)
	if !ok {
		return
	}
	args := ctx.QueryArgs()
	after, ok := queryInt(args.Peek("after_version"), 0, 0, 1<<62)
	if !ok {
		e.errs.Write(ctx, invalid("after_version", "must be an integer >= 0"))
		return
	}
	limit, ok := queryInt(args.Peek("limit"), EventsPageDefault, 1, EventsPageMax)
	if !ok {
		e.errs.Write(ctx, invalid("limit", "must be an integer from 1 to "+strconv.Itoa(EventsPageMax)))
		return
	}
	qctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	body, found, err := e.store.Events(qctx, id, after, int(limit))
	if err == nil && !found {
		err = &session.Error{Code: session.ErrSessionNotFound.Code, Details: []byte(`{"session_id":"` + id + `"}`)}
	}
	if err != nil {
		e.errs.Write(ctx, err)
		return
	}
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(body)
}

// queryInt parses an optional integer query parameter within [lo, hi].
func queryInt(raw []byte, def, lo, hi int64) (int64, bool) {
	if len(raw) == 0 {
		return def, true
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil && n >= lo && n <= hi
}
