package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/engine"
	"github.com/synckairos/synckairos/session"
)

// target is what a scenario drives: the real server, or one of the floors.
type target interface {
	name() string
	setup(ctx context.Context, s *sess) error // create and start; sets s.base
	switchOp(ctx context.Context, s *sess) (version int64, errKind string)
	teardown(ctx context.Context, s *sess) error
	wsURL(id string) string // "" when the target has no WebSocket side
}

// newSess makes a session of p participants with fresh ids.
func newSess(p int) *sess {
	s := &sess{id: uuid.NewString(), parts: make([]string, p)}
	for i := range s.parts {
		s.parts[i] = uuid.NewString()
	}
	return s
}

// bankMS is every participant's time bank: a day, the largest the API
// accepts, so no clock runs out during a soak.
const bankMS = 86400000

// httpTarget is a running SyncKairos, over its v1 REST API.
type httpTarget struct {
	label string
	addr  string // host:port
	hc    *fasthttp.HostClient
}

func newHTTPClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      conns,
		MaxConnWaitTimeout:            30 * time.Second,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		MaxIdemponentCallAttempts:     1,
		DisableHeaderNamesNormalizing: true,
	}
}

func (t *httpTarget) name() string { return t.label }

func (t *httpTarget) wsURL(id string) string { return "ws://" + t.addr + "/ws?sessionId=" + id }

type createBody struct {
	SessionID    string        `json:"session_id"`
	SyncMode     string        `json:"sync_mode"`
	Participants []createParty `json:"participants"`
}

type createParty struct {
	ID    string `json:"participant_id"`
	Index int    `json:"participant_index"`
	Total int64  `json:"total_time_ms"`
}

var (
	ctJSON    = []byte("application/json")
	emptyJSON = []byte("{}")
	mPost     = []byte("POST")
	mGet      = []byte("GET")
	mDelete   = []byte("DELETE")
)

// do sends one request and returns the status, the body (valid until the
// next call with the same response) and "" or an error kind.
func (t *httpTarget) do(req *fasthttp.Request, resp *fasthttp.Response) (int, []byte, string) {
	if err := t.hc.Do(req, resp); err != nil {
		return 0, nil, netErrKind(err)
	}
	return resp.StatusCode(), resp.Body(), ""
}

func netErrKind(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "conn_closed"
	}
	return "conn_error"
}

// statusKind names a failed reply: "http_429", "http_400 INVALID_STATE_TRANSITION".
func statusKind(status int, body []byte) string {
	k := "http_" + strconv.Itoa(status)
	if c := errCode(body); c != "" {
		k += " " + c
	}
	return k
}

func (t *httpTarget) call(method []byte, path string, body []byte, want int) (int64, string) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethodBytes(method)
	req.SetRequestURI(path)
	req.Header.SetHost(t.addr)
	if body != nil {
		req.Header.SetContentTypeBytes(ctJSON)
		req.SetBodyRaw(body)
	}
	status, b, kind := t.do(req, resp)
	if kind != "" {
		return 0, kind
	}
	if status != want {
		return 0, statusKind(status, b)
	}
	return msgVersion(b), ""
}

func (t *httpTarget) setup(_ context.Context, s *sess) error {
	b := createBody{SessionID: s.id, SyncMode: "per_participant"}
	for i, p := range s.parts {
		b.Participants = append(b.Participants, createParty{ID: p, Index: i, Total: bankMS})
	}
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if _, kind := t.call(mPost, "/v1/sessions", body, 201); kind != "" {
		return errors.New("create: " + kind)
	}
	v, kind := t.call(mPost, "/v1/sessions/"+s.id+"/start", emptyJSON, 200)
	if kind != "" {
		return errors.New("start: " + kind)
	}
	s.base, s.final = v, v
	return nil
}

func (t *httpTarget) switchOp(_ context.Context, s *sess) (int64, string) {
	v, kind := t.call(mPost, "/v1/sessions/"+s.id+"/switch", emptyJSON, 200)
	if kind == "" && v < 0 {
		return 0, "no_version_in_reply"
	}
	return v, kind
}

func (t *httpTarget) getOp(s *sess) string {
	_, kind := t.call(mGet, "/v1/sessions/"+s.id, nil, 200)
	return kind
}

func (t *httpTarget) timeOp() string {
	_, kind := t.call(mGet, "/v1/time", nil, 200)
	return kind
}

func (t *httpTarget) teardown(_ context.Context, s *sess) error {
	if _, kind := t.call(mDelete, "/v1/sessions/"+s.id, nil, 204); kind != "" {
		return errors.New("delete: " + kind)
	}
	return nil
}

// evalTarget calls the scripts through the engine directly: the floor under
// the server's switch, with no HTTP and no service in the way.
type evalTarget struct {
	e         *engine.Engine
	relayAddr string // the minimal relay, for fan-out floors
}

func newEvalTarget(ctx context.Context, rdb redis.UniversalClient) (*evalTarget, error) {
	// event_cap 0: no audit events, as the server runs with persistence off.
	e := engine.New(rdb, engine.Options{})
	if err := e.Load(ctx); err != nil {
		return nil, err
	}
	return &evalTarget{e: e}, nil
}

func (t *evalTarget) name() string { return "floor:evalsha" }

func (t *evalTarget) wsURL(id string) string {
	if t.relayAddr == "" {
		return ""
	}
	return "ws://" + t.relayAddr + "/ws?sessionId=" + id
}

func scriptErrKind(err error) string {
	var se *session.Error
	if errors.As(err, &se) {
		return "redis " + se.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return "redis_conn_error"
}

func (t *evalTarget) setup(ctx context.Context, s *sess) error {
	c := &session.Config{ID: s.id, SyncMode: session.ModePerParticipant}
	for i, p := range s.parts {
		c.Participants = append(c.Participants, session.Participant{ID: p, Index: int64(i), TotalTimeMS: bankMS})
	}
	if _, err := t.e.Create(ctx, c); err != nil {
		return err
	}
	st, err := t.e.Start(ctx, s.id, 0)
	if err != nil {
		return err
	}
	s.base = msgVersion(st)
	s.final = s.base
	return nil
}

func (t *evalTarget) switchOp(ctx context.Context, s *sess) (int64, string) {
	st, err := t.e.Switch(ctx, s.id, session.SwitchArgs{})
	if err != nil {
		return 0, scriptErrKind(err)
	}
	v := msgVersion(st)
	if v < 0 {
		return 0, "no_version_in_reply"
	}
	return v, ""
}

func (t *evalTarget) teardown(ctx context.Context, s *sess) error {
	_, err := t.e.Delete(ctx, s.id, 0)
	return err
}

// bareTarget is a fasthttp handler that answers a fixed body: the floor
// under the server's HTTP path.
type bareTarget struct{ http *httpTarget }

func (t *bareTarget) name() string                          { return "floor:http" }
func (t *bareTarget) wsURL(string) string                   { return "" }
func (t *bareTarget) setup(context.Context, *sess) error    { return nil }
func (t *bareTarget) teardown(context.Context, *sess) error { return nil }
func (t *bareTarget) switchOp(_ context.Context, s *sess) (int64, string) {
	return t.http.call(mPost, "/v1/sessions/"+s.id+"/switch", emptyJSON, 200)
}
