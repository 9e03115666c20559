package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi-validator/strict"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/valyala/fasthttp"
	"go.yaml.in/yaml/v3"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/docs"
	"github.com/synckairos/synckairos/handlers"
	"github.com/synckairos/synckairos/servertest"
)

// The OpenAPI tests hold docs/openapi.yaml to the running server: every
// exchange below is a real request to an in-process server, and its
// response (status, headers, body) must match the document in strict mode,
// where a field or header the document does not declare is an error too.
// At the end every response the document lists (route, status, error code)
// must have been produced, or be excused by name (excusedResponse).

// contract is docs/openapi.yaml, ready to validate exchanges. The servers'
// subtests run in parallel; validation is serialized, since the validator
// does not promise to be safe for concurrent use.
type contract struct {
	mu    sync.Mutex
	model *v3.Document
	v     validator.Validator // strict
	loose validator.Validator // the document as written: what it refuses by itself
	opts  *config.ValidationOptions
	seen  map[string]bool // docKey of every exchange checked
}

// ignored response headers, beyond the validator's defaults: fasthttp's
// Server, and CORS, whose headers go on every response (the document says
// so once, in its description).
var contractIgnoredHeaders = []string{"server", "access-control-allow-origin", "access-control-allow-credentials",
	"access-control-expose-headers"}

// contractFreeForm are the maps whose keys are data, not fields (strict
// mode would call every key undeclared), and the states of the events
// route: the validator's strict walk does not see into an allOf inside a
// oneOf branch (State). Their values are still validated, only not
// strictly; the same states are strict in the replies and WebSocket
// messages.
var contractFreeForm = []string{"$.body.metadata.**", "$.body.data.metadata.**", "$.body.state.metadata.**",
	"$.body.checks.*", "$.body.data.group_remaining_ms.*", "$.body.state.group_remaining_ms.*",
	"$.body.data[*].state.**",
	// GET /openapi.json: TestOpenAPIServed compares it with the YAML
	"$.body.info.**", "$.body.servers.**", "$.body.security.**", "$.body.tags.**", "$.body.paths**", "$.body.components.**"}

func newContract(t *testing.T) *contract {
	t.Helper()
	doc, err := libopenapi.NewDocument(docs.OpenAPIYAML())
	if err != nil {
		t.Fatal(err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	opts := []config.Option{config.WithStrictMode(), config.WithStrictIgnoredHeadersExtra(contractIgnoredHeaders...),
		config.WithStrictIgnorePaths(contractFreeForm...)}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	loose, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return &contract{model: &m.Model, v: v, loose: loose, opts: config.NewValidationOptions(opts...), seen: map[string]bool{}}
}

func docKey(method, route string, status int, code string) string {
	return method + " " + route + " " + strconv.Itoa(status) + " " + code
}

// exchange is one request and the response it must get.
type exchange struct {
	name       string
	method     string
	route      string // the document's path template
	id         string // fills {id} (or {file})
	query      string
	body       string
	ctype      string // Content-Type of body; default application/json
	hdr        []string
	status     int
	code       string   // the error code; "" for a success
	headers    []string // response headers that must be present
	docRejects bool     // the document must refuse the request too
	raw        bool     // outside the middleware (/ws): no X-Request-Id
}

// newRequest is the request tryReq sends, for the validator.
func newRequest(method, url, body string, hdr []string) *http.Request {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// run sends x to base and checks the response against x and the document.
func (c *contract) run(t *testing.T, base string, x exchange) apiResp {
	t.Helper()
	url := base + strings.NewReplacer("{id}", x.id, "{file}", x.id).Replace(x.route) + x.query
	hdr := x.hdr
	if x.ctype != "" {
		hdr = append([]string{"Content-Type", x.ctype}, hdr...)
	}
	r := doReq(t, x.method, url, x.body, hdr...)
	c.check(t, x, newRequest(x.method, url, x.body, hdr), r)
	return r
}

func (c *contract) check(t *testing.T, x exchange, req *http.Request, r apiResp) {
	t.Helper()
	what := x.name + ": " + x.method + " " + x.route
	if r.status != x.status {
		t.Errorf("%s: status %d %s, want %d", what, r.status, r.body, x.status)
		return
	}
	if x.code != "" {
		if got := r.errCode(t).Error.Code; got != x.code {
			t.Errorf("%s: code %s, want %s (%s)", what, got, x.code, r.body)
			return
		}
	}
	if !x.raw && r.header.Get("X-Request-Id") == "" {
		t.Errorf("%s: no X-Request-Id", what)
	}
	for _, h := range x.headers {
		if r.header.Get(h) == "" {
			t.Errorf("%s: no %s header: %v", what, h, r.header)
		}
	}
	resp := &http.Response{StatusCode: r.status, Header: r.header, Request: req,
		Body: io.NopCloser(bytes.NewReader(r.body)), ContentLength: int64(len(r.body))}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok, errs := c.v.ValidateHttpResponse(req, resp); !ok {
		t.Errorf("%s: the response breaks the document: %s\n%s", what, describe(errs), r.body)
	}
	again := req.Clone(context.Background())
	again.Body = io.NopCloser(strings.NewReader(x.body))
	switch {
	case x.status < 400:
		if ok, errs := c.v.ValidateHttpRequest(again); !ok {
			t.Errorf("%s: the server took a request the document refuses: %s", what, describe(errs))
		}
	case x.docRejects:
		if ok, _ := c.loose.ValidateHttpRequest(again); ok {
			t.Errorf("%s: the document takes a request the server refuses", what)
		}
	}
	c.seen[docKey(x.method, x.route, r.status, x.code)] = true
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Message + ": " + e.Reason)
		for _, f := range e.SchemaValidationErrors {
			b.WriteString("\n    at " + f.FieldPath + " (" + f.KeywordLocation + "): " + f.Reason)
		}
	}
	return b.String()
}

// matchSchema checks a JSON value against a component schema, strictly.
func (c *contract) matchSchema(t *testing.T, name string, s *base.Schema, body []byte) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok, errs := schema_validation.NewSchemaValidator().ValidateSchemaBytes(s, body); !ok {
		t.Errorf("%s: %s breaks the document: %s", name, body, describe(errs))
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if res := strict.ValidateBody(s, v, strict.DirectionResponse, c.opts, 3.1); !res.Valid {
		for _, u := range res.UndeclaredValues {
			t.Errorf("%s: %s is not in the document: %s", name, u.Path, body)
		}
	}
}

func (c *contract) schema(name string) *base.Schema {
	return c.model.Components.Schemas.GetOrZero(name).Schema()
}

// matchResponse checks r against a response of components, for what no
// operation lists: unmatched routes, and a 500 from a test route.
func (c *contract) matchResponse(t *testing.T, name string, r apiResp) {
	t.Helper()
	resp := c.model.Components.Responses.GetOrZero(name)
	for h, def := range resp.Headers.FromOldest() {
		if def.Required && r.header.Get(h) == "" {
			t.Errorf("%s: no %s header", name, h)
		}
	}
	c.matchSchema(t, name, resp.Content.GetOrZero("application/json").Schema.Schema(), r.body)
}

// TestOpenAPIResponses drives every route to each response the tests can
// produce and holds it to the document; servers: "main" (the machine's
// Redis), "limited" (rate limits, CORS and connection caps), "down" (its
// Redis killed), "stalled" (its Redis frozen), "full" (audit stream cap),
// "persist" (PostgreSQL) and "auth" (AUTH_MODE=jwt).
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	t.Run("servers", func(t *testing.T) {
		for _, g := range []struct {
			name string
			run  func(*testing.T, *contract) *apiServer
		}{
			{"main", contractMain}, {"limited", contractLimited}, {"down", contractDown},
			{"stalled", contractStalled}, {"full", contractFull}, {"persist", contractPersist}, {"auth", contractAuth},
		} {
			t.Run(g.name, func(t *testing.T) {
				t.Parallel()
				g.run(t, c)
			})
		}
	})
	if t.Failed() {
		return
	}
	var missing []string
	for _, key := range c.documented() {
		f := strings.Fields(key)
		if c.seen[key] {
			continue
		}
		if why := excusedResponse(strings.Join(f[3:], "")); why != "" {
			t.Logf("not produced here: %s (%s)", key, why)
			continue
		}
		missing = append(missing, key)
	}
	t.Logf("%d documented responses, %d produced", len(c.documented()), len(c.seen))
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("documented but never produced (add an exchange, or excuse it in excusedResponse): %s", m)
	}
}

// excusedResponse says why a documented response (by its error code)
// needs no exchange of its own.
func excusedResponse(code string) string {
	if code == handlers.CodeInternal {
		return "one shape on every route: checked on a test route that panics"
	}
	return ""
}

// documented lists every (route, status, code) the document names.
func (c *contract) documented() []string {
	var out []string
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			for status, resp := range op.Responses.Codes.FromOldest() {
				n, _ := strconv.Atoi(status)
				codes := responseCodes(resp)
				if len(codes) == 0 {
					codes = []string{""}
				}
				for _, code := range codes {
					out = append(out, docKey(strings.ToUpper(method), path, n, code))
				}
			}
		}
	}
	return out
}

// responseCodes lists the error codes a response's JSON body may carry.
func responseCodes(r *v3.Response) []string {
	if r == nil || r.Content == nil {
		return nil
	}
	mt := r.Content.GetOrZero("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return schemaCodes(mt.Schema.Schema())
}

// schemaCodes lists the error.code consts of an error body schema (one, or
// one per branch of a oneOf).
func schemaCodes(s *base.Schema) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, p := range s.OneOf {
		out = append(out, schemaCodes(p.Schema())...)
	}
	if s.Properties == nil {
		return out
	}
	e := s.Properties.GetOrZero("error")
	if e == nil || e.Schema().Properties == nil {
		return out
	}
	if code := e.Schema().Properties.GetOrZero("code"); code != nil && code.Schema().Const != nil {
		out = append(out, code.Schema().Const.Value)
	}
	return out
}

// authCodes are documented ahead of AUTH_MODE (authentication adds them to
// the error table).
var authCodes = []string{"UNAUTHENTICATED", "FORBIDDEN"}

// TestOpenAPIErrorTable: every code of the error table (handlers/errors.go)
// is in the document, under its own status only, and the document names no
// code the table does not answer.
func TestOpenAPIErrorTable(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	statuses := handlers.Statuses()
	used := map[string]bool{}
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			if op.OperationId == "" || op.Summary == "" {
				t.Errorf("%s %s: no operationId or summary", method, path)
			}
			for status, resp := range op.Responses.Codes.FromOldest() {
				for _, code := range responseCodes(resp) {
					used[code] = true
					want, ok := statuses[code]
					if !ok && !slices.Contains(authCodes, code) {
						t.Errorf("%s %s %s: code %s is not in the error table", method, path, status, code)
					}
					if ok && strconv.Itoa(want) != status {
						t.Errorf("%s %s: code %s under %s, the table answers %d", method, path, code, status, want)
					}
				}
			}
		}
	}
	for _, name := range []string{"NotFound", "MethodNotAllowed"} {
		for _, code := range responseCodes(c.model.Components.Responses.GetOrZero(name)) {
			used[code] = true
		}
	}
	enum := map[string]bool{}
	for _, n := range c.schema("ErrorCode").Enum {
		enum[n.Value] = true
	}
	for code := range statuses {
		if !used[code] {
			t.Errorf("code %s of the error table is on no documented response", code)
		}
		if !enum[code] {
			t.Errorf("code %s is missing from ErrorCode", code)
		}
	}
	for code := range enum {
		if !used[code] {
			t.Errorf("ErrorCode %s is on no documented response", code)
		}
	}
}

// TestOpenAPIServed: GET /openapi.json is docs/openapi.yaml, as JSON.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	r := doReq(t, "GET", s.base+"/openapi.json", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", r.status, r.header.Get("Content-Type"))
	}
	var fromYAML, want, got any
	if err := yaml.Unmarshal(docs.OpenAPIYAML(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(fromYAML)
	_ = json.Unmarshal(b, &want)
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("GET /openapi.json is not docs/openapi.yaml")
	}
}

// The servers. Each returns its apiServer once its exchanges are done.

// createBody is a POST /v1/sessions body: mode, participants (ids, banks),
// and extra session fields (",\"k\":v...").
func createBody(id, mode string, parts []string, bank int, group, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"session_id":%q,"sync_mode":%q%s,"participants":[`, id, mode, extra)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"participant_id":%q,"participant_index":%d,"total_time_ms":%d`, p, i, bank)
		if group != "" {
			fmt.Fprintf(&b, `,"group_id":%q`, group)
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.String()
}

func uuids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = uuid.NewString()
	}
	return out
}

// The routes, as the document names them.
const (
	rSessions = "/v1/sessions"
	rSession  = "/v1/sessions/{id}"
	rStart    = "/v1/sessions/{id}/start"
	rSwitch   = "/v1/sessions/{id}/switch"
	rPause    = "/v1/sessions/{id}/pause"
	rResume   = "/v1/sessions/{id}/resume"
	rComplete = "/v1/sessions/{id}/complete"
	rEvents   = "/v1/sessions/{id}/events"
)

// transitions are the POST routes taking an optional expected version.
var transitions = []string{rStart, rPause, rResume, rComplete}

func contractMain(t *testing.T, c *contract) *apiServer {
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + servertest.RedisAddr(), "BODY_LIMIT_BYTES": "8192"}, nil)
	// a test route that panics: the 500 every route may answer
	s.app.handle("GET", "/test/panic", handlers.RouteOpts{}, func(*fasthttp.RequestCtx) { panic("boom") })

	a, ap := uuid.NewString(), uuids(2)
	full := createBody(a, "per_participant", ap, 60000, "",
		`,"time_per_cycle_ms":30000,"increment_ms":2000,"max_time_ms":3600000,"auto_advance":true,"metadata":{"table":7,"tags":["x"]},"warnings_ms":[10000,5000]`)
	b, bp := uuid.NewString(), uuids(2)
	g, gp := uuid.NewString(), uuids(3)
	unknown := uuid.NewString()
	ok := func(name, method, route, id, body string, status int, hdr ...string) exchange {
		return exchange{name: name, method: method, route: route, id: id, body: body, status: status, hdr: hdr}
	}
	bad := func(name, method, route, id, body, code string, status int, hdr ...string) exchange {
		return exchange{name: name, method: method, route: route, id: id, body: body, status: status, code: code, hdr: hdr}
	}
	replayed := []string{"Idempotent-Replayed"}
	xs := []exchange{
		{name: "create, every option", method: "POST", route: rSessions, body: full, status: 201, hdr: []string{"Idempotency-Key", "k-" + a}},
		{name: "create replayed", method: "POST", route: rSessions, body: full, status: 201, hdr: []string{"Idempotency-Key", "k-" + a}, headers: replayed},
		bad("key reused", "POST", rSessions, "", createBody(a, "count_up", ap, 60000, "", ""), "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "k-"+a),
		bad("id in use", "POST", rSessions, "", full, "SESSION_EXISTS", 409),
		ok("create plain", "POST", rSessions, "", createBody(b, "per_participant", bp, 60000, "", ""), 201),
		ok("create global", "POST", rSessions, "", createBody(g, "global", gp, 60000, "", `,"total_time_ms":100000`), 201),
		ok("create per_cycle", "POST", rSessions, "", createBody(uuid.NewString(), "per_cycle", uuids(2), 600000, "", `,"time_per_cycle_ms":10000`), 201),
		ok("create per_group", "POST", rSessions, "", createBody(uuid.NewString(), "per_group", uuids(2), 60000, uuid.NewString(), ""), 201),
		ok("create count_up", "POST", rSessions, "", createBody(uuid.NewString(), "count_up", uuids(1), 60000, "", `,"max_time_ms":60000`), 201),
		ok("create 33 participants", "POST", rSessions, "", createBody(uuid.NewString(), "per_participant", uuids(33), 60000, "", ""), 201),
		ok("create, ids in upper case", "POST", rSessions, "", createBody(strings.ToUpper(uuid.NewString()), "per_participant",
			[]string{strings.ToUpper(uuid.NewString()), uuid.NewString()}, 60000, "", ""), 201),
		{name: "create without participants", method: "POST", route: rSessions, body: `{"session_id":"` + uuid.NewString() + `","sync_mode":"per_participant"}`,
			status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "per_cycle without time_per_cycle_ms", method: "POST", route: rSessions, body: createBody(uuid.NewString(), "per_cycle", uuids(1), 60000, "", ""),
			status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "per_group without group_id", method: "POST", route: rSessions, body: createBody(uuid.NewString(), "per_group", uuids(1), 60000, "", ""),
			status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "unknown key", method: "POST", route: rSessions, body: createBody(uuid.NewString(), "per_participant", uuids(1), 60000, "", `,"colour":"red"`),
			status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "float bank", method: "POST", route: rSessions, body: strings.Replace(createBody(uuid.NewString(), "per_participant", uuids(1), 60000, "", ""), "60000", "60000.5", 1),
			status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "malformed JSON", method: "POST", route: rSessions, body: `{"session_id":`, status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "body over BODY_LIMIT_BYTES", method: "POST", route: rSessions, body: createBody(uuid.NewString(), "per_participant", uuids(1), 60000, "",
			`,"metadata":{"pad":"`+strings.Repeat("x", 9000)+`"}`), status: 400, code: "VALIDATION_ERROR"},
		{name: "text/plain", method: "POST", route: rSessions, body: full, ctype: "text/plain", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},

		ok("get", "GET", rSession, a, "", 200),
		ok("get, id in upper case", "GET", rSession, strings.ToUpper(a), "", 200),
		{name: "get, not a UUID", method: "GET", route: rSession, id: "nope", status: 400, code: "VALIDATION_ERROR", docRejects: true},
		bad("get unknown", "GET", rSession, unknown, "", "SESSION_NOT_FOUND", 404),

		ok("start, If-Match", "POST", rStart, a, "", 200, "If-Match", `"1"`, "Idempotency-Key", "s-"+a),
		{name: "start replayed", method: "POST", route: rStart, id: a, status: 200, hdr: []string{"If-Match", `"1"`, "Idempotency-Key", "s-" + a}, headers: replayed},
		bad("start, key reused", "POST", rStart, a, `{"expected_version":1}`, "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "s-"+a),
		bad("start twice", "POST", rStart, a, "", "INVALID_STATE_TRANSITION", 400),
		bad("start, stale version", "POST", rStart, b, `{"expected_version":5}`, "CONFLICT", 409),
		{name: "start, expected_version 0", method: "POST", route: rStart, id: b, body: `{"expected_version":0}`, status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "start, If-Match not a version", method: "POST", route: rStart, id: b, hdr: []string{"If-Match", "abc"}, status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "start, Idempotency-Key too long", method: "POST", route: rStart, id: b, hdr: []string{"Idempotency-Key", strings.Repeat("k", 256)},
			status: 400, code: "VALIDATION_ERROR", docRejects: true},

		ok("switch", "POST", rSwitch, a, `{"expected_version":2,"current_participant_id":"`+ap[0]+`"}`, 200),
		ok("switch, empty body", "POST", rSwitch, a, "", 200),
		ok("switch to a named participant", "POST", rSwitch, a, `{"next_participant_id":"`+strings.ToUpper(ap[1])+`"}`, 200, "Idempotency-Key", "w-"+a),
		bad("switch, key reused", "POST", rSwitch, a, `{"next_participant_id":"`+ap[0]+`"}`, "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "w-"+a),
		bad("switch to a stranger", "POST", rSwitch, a, `{"next_participant_id":"`+unknown+`"}`, "PARTICIPANT_NOT_FOUND", 400),
		bad("switch, not their turn", "POST", rSwitch, a, `{"current_participant_id":"`+ap[0]+`"}`, "CONFLICT", 409),
		bad("switch a pending session", "POST", rSwitch, b, "", "INVALID_STATE_TRANSITION", 400),
		{name: "switch, unknown key", method: "POST", route: rSwitch, id: a, body: `{"next":1}`, status: 400, code: "VALIDATION_ERROR", docRejects: true},

		ok("pause", "POST", rPause, a, "", 200),
		bad("pause twice", "POST", rPause, a, "", "INVALID_STATE_TRANSITION", 400),
		ok("resume", "POST", rResume, a, `{}`, 200),
		bad("resume a running session", "POST", rResume, a, "", "INVALID_STATE_TRANSITION", 400),
		ok("complete", "POST", rComplete, a, "", 200),
		bad("complete twice", "POST", rComplete, a, "", "INVALID_STATE_TRANSITION", 400),

		ok("start global", "POST", rStart, g, "", 200),
		ok("pause, key", "POST", rPause, g, "", 200, "Idempotency-Key", "p-"+g),
		bad("pause, key reused", "POST", rPause, g, `{"expected_version":9}`, "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "p-"+g),
		ok("resume, key", "POST", rResume, g, "", 200, "Idempotency-Key", "r-"+g),
		bad("resume, key reused", "POST", rResume, g, `{}`, "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "r-"+g),
		ok("complete, key", "POST", rComplete, g, "", 200, "Idempotency-Key", "c-"+g),
		bad("complete, key reused", "POST", rComplete, g, `{}`, "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "c-"+g),

		bad("events without DATABASE_URL", "GET", rEvents, a, "", "PERSISTENCE_DISABLED", 503),

		bad("delete, stale version", "DELETE", rSession, b, "", "CONFLICT", 409, "If-Match", "7"),
		ok("delete", "DELETE", rSession, b, "", 204, "Idempotency-Key", "d-"+b),
		{name: "delete replayed", method: "DELETE", route: rSession, id: b, status: 204, hdr: []string{"Idempotency-Key", "d-" + b}, headers: replayed},
		bad("delete, key reused", "DELETE", rSession, b, `{"expected_version":1}`, "IDEMPOTENCY_KEY_REUSED", 422, "Idempotency-Key", "d-"+b),
		ok("delete what is not there", "DELETE", rSession, unknown, `{"expected_version":3}`, 204),
		{name: "delete, not a UUID", method: "DELETE", route: rSession, id: "nope", status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "delete, text/plain", method: "DELETE", route: rSession, id: b, body: "x", ctype: "text/plain", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},

		ok("time", "GET", "/v1/time", "", "", 200),
		ok("health", "GET", "/health", "", "", 200),
		ok("ready", "GET", "/ready", "", "", 200),
		ok("metrics", "GET", "/metrics", "", "", 200),
		ok("openapi.json", "GET", "/openapi.json", "", "", 200),
		{name: "not a WebSocket handshake", method: "GET", route: "/ws", query: "?sessionId=" + a, status: 400, raw: true},
	}
	// every transition: unknown session, bad id, text/plain, stale If-Match
	for _, r := range append([]string{rSwitch}, transitions...) {
		xs = append(xs,
			bad("unknown session", "POST", r, unknown, "", "SESSION_NOT_FOUND", 404),
			exchange{name: "not a UUID", method: "POST", route: r, id: "nope", status: 400, code: "VALIDATION_ERROR", docRejects: true},
			exchange{name: "text/plain", method: "POST", route: r, id: a, body: "{}", ctype: "text/plain", status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
			bad("stale If-Match", "POST", r, a, "", "CONFLICT", 409, "If-Match", "1"))
	}
	for _, x := range xs {
		c.run(t, s.base, x)
	}

	// what no operation lists: unmatched routes and a panic
	nf := doReq(t, "GET", s.base+"/v2/nothing", "")
	mna := doReq(t, "PUT", s.base+"/v1/sessions/"+a, "{}")
	boom := doReq(t, "GET", s.base+"/test/panic", "")
	for _, x := range []struct {
		name, code string
		status     int
		r          apiResp
	}{{"NotFound", "NOT_FOUND", 404, nf}, {"MethodNotAllowed", "METHOD_NOT_ALLOWED", 405, mna}, {"InternalError", "INTERNAL_ERROR", 500, boom}} {
		if x.r.status != x.status || x.r.errCode(t).Error.Code != x.code {
			t.Errorf("%s: %d %s", x.name, x.r.status, x.r.body)
		}
		c.matchResponse(t, x.name, x.r)
	}

	// the embedded files: 200, then 304 for the ETag it gave
	for _, x := range []exchange{
		{name: "SDK bundle", method: "GET", route: "/sdk/synckairos.js", status: 200, headers: []string{"ETag", "Cache-Control"}},
		{name: "demo page", method: "GET", route: "/demo/", status: 200, headers: []string{"ETag"}},
		{name: "demo script", method: "GET", route: "/demo/{file}", id: "demo.js", status: 200, headers: []string{"ETag"}},
		{name: "demo style sheet", method: "GET", route: "/demo/{file}", id: "demo.css", status: 200, headers: []string{"ETag"}},
	} {
		r := c.run(t, s.base, x)
		x.name, x.status, x.hdr = x.name+", not modified", 304, []string{"If-None-Match", r.header.Get("ETag")}
		c.run(t, s.base, x)
	}
	c.run(t, s.base, exchange{name: "no such demo file", method: "GET", route: "/demo/{file}", id: "nothing.js", status: 404, code: "NOT_FOUND"})

	c.webSocket(t, s)
	return s
}

// webSocket checks the handshake and every message kind against the
// document: CONNECTED, ERROR, PONG, STATE_UPDATE, STATE_SYNC, TIME_WARNING,
// TIME_EXPIRED (a 1 s bank runs out), SESSION_DELETED and its close.
func (c *contract) webSocket(t *testing.T, s *apiServer) {
	id, parts := uuid.NewString(), uuids(2)
	wsURL := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?sessionId=" + strings.ToUpper(id)
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	req := wsRequest(s.base, id)
	c.check(t, exchange{name: "upgrade", method: "GET", route: "/ws", status: 101, raw: true, headers: []string{"Sec-WebSocket-Accept"}},
		req, apiResp{status: resp.StatusCode, header: resp.Header})

	server, client := c.schema("WsServerMessage"), c.schema("WsClientMessage")
	got := map[string]int{}
	read := func(until string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v (got %v)", until, err, got)
			}
			var m struct{ Type string }
			_ = json.Unmarshal(msg, &m)
			got[m.Type]++
			c.matchSchema(t, "WebSocket "+m.Type, server, msg)
			if m.Type == until {
				return
			}
		}
	}
	send := func(msg string, valid bool) {
		t.Helper()
		c.mu.Lock()
		ok, _ := schema_validation.NewSchemaValidator().ValidateSchemaBytes(client, []byte(msg))
		c.mu.Unlock()
		if ok != valid {
			t.Errorf("client message %s: the document takes it: %v, want %v", msg, ok, valid)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	read("CONNECTED")
	send(`{"type":"RECONNECT"}`, true) // before the session exists: ERROR SESSION_NOT_FOUND
	read("ERROR")
	send(`{"type":"HELLO"}`, false)
	read("ERROR")
	send(`not json`, false)
	read("ERROR")
	send(`{"type":"PING","client_timestamp":1700000000000}`, true)
	read("PONG")
	body := createBody(id, "per_participant", parts, 1000, "", `,"warnings_ms":[500]`)
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	read("STATE_UPDATE")
	send(`{"type":"RECONNECT"}`, true)
	read("STATE_SYNC")
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", ""); r.status != 200 {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	read("TIME_WARNING") // 500 ms left of the 1 s bank
	read("TIME_EXPIRED")
	if r := doReq(t, "DELETE", s.base+"/v1/sessions/"+id, ""); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	read("SESSION_DELETED")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after SESSION_DELETED: %v, want close 1000", err)
	}
	for _, typ := range []string{"CONNECTED", "ERROR", "PONG", "STATE_UPDATE", "STATE_SYNC", "TIME_WARNING", "TIME_EXPIRED", "SESSION_DELETED"} {
		if got[typ] == 0 {
			t.Errorf("no %s message", typ)
		}
	}

	// a bad sessionId is upgraded, then closed with 1008
	bad, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.base, "http")+"/ws?sessionId=nope", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer bad.Close()
	if resp.StatusCode != 101 {
		t.Errorf("bad sessionId: %d", resp.StatusCode)
	}
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := bad.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Errorf("bad sessionId: %v, want close 1008", err)
	}
}

// contractLimited: rate limits (two requests per IP, then 429 on every
// limited route), a named CORS origin (so WebSockets check Origin) and one
// WebSocket connection per instance.
func contractLimited(t *testing.T, c *contract) *apiServer {
	addr, _ := startRedisServer(t) // of its own: the budgets are per IP, and every test is 127.0.0.1
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr, "RATE_LIMIT_ENABLED": "true",
		"RATE_LIMIT_IP_MAX": "2", "RATE_LIMIT_IP_WINDOW": "1h", "CORS_ORIGINS": "https://app.example.com",
		"WS_MAX_CONNECTIONS": "1"}, nil)
	id, parts := uuid.NewString(), uuids(2)
	limits := []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
	xs := []exchange{
		{name: "create, limited", method: "POST", route: rSessions, body: createBody(id, "per_participant", parts, 60000, "", ""), status: 201, headers: limits},
		{name: "get, limited", method: "GET", route: rSession, id: id, status: 200, headers: limits},
		{name: "time is not limited", method: "GET", route: "/v1/time", status: 200},
		{name: "ready is not limited", method: "GET", route: "/ready", status: 200},
		{name: "create over the limit", method: "POST", route: rSessions, body: createBody(uuid.NewString(), "per_participant", parts, 60000, "", ""),
			status: 429, code: "RATE_LIMITED", headers: append([]string{"Retry-After"}, limits...)},
		{name: "delete over the limit", method: "DELETE", route: rSession, id: id, status: 429, code: "RATE_LIMITED", headers: []string{"Retry-After"}},
	}
	for _, r := range []string{rSession, rEvents} {
		xs = append(xs, exchange{name: "over the limit", method: "GET", route: r, id: id, status: 429, code: "RATE_LIMITED", headers: []string{"Retry-After"}})
	}
	for _, r := range append([]string{rSwitch}, transitions...) {
		xs = append(xs, exchange{name: "over the limit", method: "POST", route: r, id: id, status: 429, code: "RATE_LIMITED", headers: []string{"Retry-After"}})
	}
	for _, x := range xs {
		c.run(t, s.base, x)
	}
	if r := doReq(t, "GET", s.base+"/v1/time", ""); r.header.Get("RateLimit-Limit") != "" {
		t.Errorf("/v1/time carries RateLimit-Limit")
	}

	// WebSocket: an Origin not in WS_ORIGINS is 403; over the cap, 503
	wsURL := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?sessionId=" + id
	dialed := func(name string, origin string, status int, headers ...string) *websocket.Conn {
		t.Helper()
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return c.dial(t, s.base, id, wsURL, h, exchange{name: name, status: status, headers: headers})
	}
	dialed("Origin not allowed", "https://evil.example.com", 403)
	first := dialed("the one connection", "https://app.example.com", 101)
	if first == nil {
		t.Fatal("no connection")
	}
	defer first.Close()
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := first.ReadMessage(); err != nil { // CONNECTED: the slot is taken
		t.Fatal(err)
	}
	dialed("over the connection cap", "", 503, "Retry-After")
	return s
}

// contractDown: Redis is gone; every route that needs it is 503.
func contractDown(t *testing.T, c *contract) *apiServer {
	addr, cmd := startRedisServer(t)
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + addr}, nil)
	id, parts := uuid.NewString(), uuids(2)
	c.run(t, s.base, exchange{name: "create", method: "POST", route: rSessions, body: createBody(id, "per_participant", parts, 60000, "", ""), status: 201})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	down := func(name, method, route, body, code string) exchange {
		return exchange{name: name, method: method, route: route, id: id, body: body, status: 503, code: code, headers: []string{"Retry-After"}}
	}
	xs := []exchange{
		down("create", "POST", rSessions, createBody(uuid.NewString(), "per_participant", parts, 60000, "", ""), "UNAVAILABLE"),
		down("get", "GET", rSession, "", "UNAVAILABLE"),
		down("delete", "DELETE", rSession, "", "UNAVAILABLE"),
		down("switch", "POST", rSwitch, "", "UNAVAILABLE"),
		{name: "ready", method: "GET", route: "/ready", status: 503},
	}
	for _, r := range transitions {
		xs = append(xs, down("transition", "POST", r, "", "UNAVAILABLE"))
	}
	for _, x := range xs {
		c.run(t, s.base, x)
	}
	return s
}

// contractStalled: Redis is frozen while each write is in flight: 503
// OUTCOME_UNKNOWN.
func contractStalled(t *testing.T, c *contract) *apiServer {
	st := startStalled(t)
	id, parts := uuid.NewString(), uuids(2)
	c.run(t, st.api.base, exchange{name: "create", method: "POST", route: rSessions, body: createBody(id, "per_participant", parts, 60000, "", ""), status: 201})
	stalled := func(method, route, body string) exchange {
		return exchange{name: "in a stall", method: method, route: route, id: id, body: body, status: 503, code: "OUTCOME_UNKNOWN",
			headers: []string{"Retry-After"}}
	}
	xs := []exchange{
		stalled("POST", rSessions, createBody(uuid.NewString(), "per_participant", parts, 60000, "", "")),
		stalled("POST", rSwitch, ""),
		stalled("DELETE", rSession, `{"expected_version":99}`),
	}
	for _, r := range transitions {
		xs = append(xs, stalled("POST", r, ""))
	}
	for _, x := range xs {
		st.stop(t)
		c.run(t, st.api.base, x)
		st.resume(t)
	}
	return st.api
}

// inShard returns a new session id in shard (its last two hex digits, below keyspace.Shards).
func inShard(shard string) string {
	id := uuid.NewString()
	return id[:34] + shard
}

// contractFull: the audit stream's cap is 3 (the audit flag of a Redis of
// its own); once a shard's stream holds 3 events, every write there is 503
// STREAM_FULL.
func contractFull(t *testing.T, c *contract) *apiServer {
	s := startCappedAPI(t, 3)
	a, b, b2 := inShard("0a"), inShard("0b"), inShard("0b")
	parts := uuids(2)
	create := func(id string) string { return createBody(id, "per_participant", parts, 60000, "", "") }
	full := func(method, route, id, body string) exchange {
		return exchange{name: "stream full", method: method, route: route, id: id, body: body, status: 503, code: "STREAM_FULL",
			headers: []string{"Retry-After"}}
	}
	for _, x := range []exchange{
		{name: "create", method: "POST", route: rSessions, body: create(a), status: 201},
		{name: "start", method: "POST", route: rStart, id: a, status: 200},
		{name: "pause", method: "POST", route: rPause, id: a, status: 200}, // shard a: 3 events
		full("POST", rResume, a, ""),
		full("POST", rComplete, a, ""),
		full("DELETE", rSession, a, ""),
		full("POST", rSessions, "", create(inShard("0a"))),
		{name: "create", method: "POST", route: rSessions, body: create(b), status: 201},
		{name: "start", method: "POST", route: rStart, id: b, status: 200},
		{name: "create", method: "POST", route: rSessions, body: create(b2), status: 201}, // shard b: 3 events
		full("POST", rSwitch, b, ""),
		full("POST", rPause, b, ""),
		full("POST", rStart, b2, ""),
	} {
		c.run(t, s.base, x)
	}
	return s
}

// contractPersist: PostgreSQL records the history; the events route pages
// through it (a large session's events carry deltas, a delete's carries no
// state), and /ready degrades when PostgreSQL goes away.
func contractPersist(t *testing.T, c *contract) *apiServer {
	redisAddr, _ := startRedisServer(t)
	proxy := newCuttableProxy(t, "127.0.0.1:5432")
	s := startAPI(t, map[string]string{"REDIS_URL": "redis://" + redisAddr,
		"DATABASE_URL": persistURL(proxy.ln.Addr().String(), persistSchema(t))}, nil)
	id, parts := uuid.NewString(), uuids(2)
	big := uuid.NewString()
	for _, x := range []exchange{
		{name: "create", method: "POST", route: rSessions, body: createBody(id, "per_participant", parts, 60000, "", `,"metadata":{"room":"a"}`), status: 201},
		{name: "start", method: "POST", route: rStart, id: id, status: 200},
		{name: "switch", method: "POST", route: rSwitch, id: id, status: 200},
		{name: "delete", method: "DELETE", route: rSession, id: id, status: 204},
		{name: "create large", method: "POST", route: rSessions, body: createBody(big, "per_participant", uuids(33), 60000, "", ""), status: 201},
		{name: "start large", method: "POST", route: rStart, id: big, status: 200},
	} {
		c.run(t, s.base, x)
	}
	recorded := func(id string, n int) func() bool {
		return func() bool {
			r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events", "")
			var page struct{ Data []json.RawMessage }
			_ = json.Unmarshal(r.body, &page)
			return r.status == 200 && len(page.Data) == n
		}
	}
	waitFor(t, 30*time.Second, "4 events in PostgreSQL", recorded(id, 4))
	waitFor(t, 30*time.Second, "2 events of the large session", recorded(big, 2))
	for _, x := range []exchange{
		{name: "events", method: "GET", route: rEvents, id: id, status: 200},
		{name: "events, first page", method: "GET", route: rEvents, id: strings.ToUpper(id), query: "?limit=1", status: 200},
		{name: "events, next page", method: "GET", route: rEvents, id: id, query: "?after_version=1&limit=2", status: 200},
		{name: "events of a large session (deltas)", method: "GET", route: rEvents, id: big, status: 200},
		{name: "events of an unknown session", method: "GET", route: rEvents, id: uuid.NewString(), status: 404, code: "SESSION_NOT_FOUND"},
		{name: "events, limit 0", method: "GET", route: rEvents, id: id, query: "?limit=0", status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "events, after_version -1", method: "GET", route: rEvents, id: id, query: "?after_version=-1", status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "events, not a UUID", method: "GET", route: rEvents, id: "nope", status: 400, code: "VALIDATION_ERROR", docRejects: true},
		{name: "ready with PostgreSQL", method: "GET", route: "/ready", status: 200},
	} {
		c.run(t, s.base, x)
	}
	var page struct {
		Data []struct {
			EventType string          `json:"event_type"`
			State     json.RawMessage `json:"state"`
		}
	}
	r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events", "")
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Data) != 4 || page.Data[3].EventType != "session_deleted" ||
		string(page.Data[3].State) != "null" {
		t.Errorf("the last event should be the delete's, with no state: %s", r.body)
	}
	proxy.set(true)
	waitFor(t, 30*time.Second, "/ready degraded", func() bool {
		return strings.Contains(string(doReq(t, "GET", s.base+"/ready", "").body), `"degraded"`)
	})
	c.run(t, s.base, exchange{name: "ready, degraded", method: "GET", route: "/ready", status: 200})
	return s
}

// contractAuth: AUTH_MODE=jwt. No token is 401 on every guarded route
// (and on /ws), a viewer's token 403 where it lacks the right or the
// session; a token that has both works, and AUTH replaces it on a live
// WebSocket (AUTH_OK).
func contractAuth(t *testing.T, c *contract) *apiServer {
	s := startAPI(t, authEnv(t, nil), nil)
	id, parts, _ := authSession(t, s, "running", 2)
	other := uuid.NewString()
	viewer := bearerH(mint(t, auth.RoleViewer, []string{id}, "", time.Hour))
	stranger := bearerH(mint(t, auth.RoleViewer, []string{other}, "", time.Hour))
	www := []string{"WWW-Authenticate"}
	body := createBody(other, "per_participant", parts, 60000, "", "")
	xs := []exchange{
		{name: "read with a token", method: "GET", route: rSession, id: id, hdr: viewer, status: 200},
		{name: "no token", method: "POST", route: rSessions, body: body, status: 401, code: "UNAUTHENTICATED", headers: www},
		{name: "bad token", method: "GET", route: rSession, id: id, hdr: bearerH("not-a-jwt"), status: 401, code: "UNAUTHENTICATED", headers: www},
		{name: "no token", method: "DELETE", route: rSession, id: id, status: 401, code: "UNAUTHENTICATED", headers: www},
		{name: "no token", method: "GET", route: rEvents, id: id, status: 401, code: "UNAUTHENTICATED", headers: www},
		{name: "viewer creates", method: "POST", route: rSessions, body: body, hdr: viewer, status: 403, code: "FORBIDDEN"},
		{name: "viewer deletes", method: "DELETE", route: rSession, id: id, hdr: viewer, status: 403, code: "FORBIDDEN"},
		{name: "another session", method: "GET", route: rSession, id: id, hdr: stranger, status: 403, code: "FORBIDDEN"},
		{name: "another session", method: "GET", route: rEvents, id: id, hdr: stranger, status: 403, code: "FORBIDDEN"},
		{name: "open route", method: "GET", route: "/openapi.json", status: 200},
	}
	for _, r := range append([]string{rSwitch}, transitions...) {
		xs = append(xs,
			exchange{name: "no token", method: "POST", route: r, id: id, status: 401, code: "UNAUTHENTICATED", headers: www},
			exchange{name: "viewer", method: "POST", route: r, id: id, hdr: viewer, status: 403, code: "FORBIDDEN"})
	}
	for _, x := range xs {
		c.run(t, s.base, x)
	}

	// the WebSocket handshake needs ?token=; AUTH replaces it
	ws := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?sessionId=" + id
	handshake := func(name, token string, status int, code string, headers ...string) *websocket.Conn {
		t.Helper()
		u := ws
		if token != "" {
			u += "&token=" + token
		}
		return c.dial(t, s.base, id, u, nil, exchange{name: name, status: status, code: code, headers: headers})
	}
	handshake("no token", "", 401, "UNAUTHENTICATED", "WWW-Authenticate")
	handshake("another session", stranger[1][len("Bearer "):], 403, "FORBIDDEN")
	conn := handshake("viewer", viewer[1][len("Bearer "):], 101, "")
	if conn == nil {
		t.Fatal("no connection")
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, send := range []string{"", `{"type":"AUTH","token":"` + viewer[1][len("Bearer "):] + `"}`} {
		if send != "" {
			c.matchSchema(t, "client AUTH", c.schema("WsClientMessage"), []byte(send))
			if err := conn.WriteMessage(websocket.TextMessage, []byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		_, msg, err := conn.ReadMessage() // CONNECTED, then AUTH_OK
		if err != nil {
			t.Fatal(err)
		}
		c.matchSchema(t, "WebSocket", c.schema("WsServerMessage"), msg)
		if send != "" && !strings.Contains(string(msg), `"AUTH_OK"`) {
			t.Errorf("AUTH: %s", msg)
		}
	}
	return s
}

// dial opens a WebSocket to url (session id on base) and checks the
// handshake's answer against x and the document; the conn is nil when the
// server refused.
func (c *contract) dial(t *testing.T, base, id, url string, hdr http.Header, x exchange) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if resp == nil {
		t.Fatalf("%s: %v", x.name, err)
	}
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(resp.Body)
	}
	x.method, x.route, x.raw = "GET", "/ws", true
	c.check(t, x, wsRequest(base, id), apiResp{status: resp.StatusCode, header: resp.Header, body: body})
	return conn
}

// wsRequest is a WebSocket handshake request, for the validator.
func wsRequest(base, id string) *http.Request {
	return newRequest("GET", base+"/ws?sessionId="+id, "", []string{"Upgrade", "websocket", "Connection", "Upgrade",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version", "13"})
}
