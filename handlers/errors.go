package handlers

import (
	"errors"
	"log/slog"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/session"
)

// Codes this package adds to the scripts' codes (session.Err*).
const (
	CodeValidation           = "VALIDATION_ERROR"
	CodeInternal             = "INTERNAL_ERROR"
	CodeRateLimited          = "RATE_LIMITED"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	CodePersistenceDisabled  = "PERSISTENCE_DISABLED"
	CodeUnauthenticated      = "UNAUTHENTICATED" // AUTH_MODE=jwt: no token, or a bad one
	CodeForbidden            = "FORBIDDEN"       // AUTH_MODE=jwt: a valid token without the right
)

// kind is how one error code is answered; retry, when set, is the
// Retry-After seconds of a failure that a later try may not meet.
type kind struct {
	status  int
	message string
	retry   string
}

// table is the one map from error code to HTTP status and message.
// STREAM_FULL keeps its own code with 503: the audit stream is at its cap
// because PostgreSQL is behind, and clients should retry later.
var table = map[string]kind{
	session.ErrSessionNotFound.Code:     {fasthttp.StatusNotFound, "Session not found", ""},
	session.ErrSessionExists.Code:       {fasthttp.StatusConflict, "Session already exists", ""},
	session.ErrInvalidTransition.Code:   {fasthttp.StatusBadRequest, "Invalid state transition", ""},
	session.ErrParticipantNotFound.Code: {fasthttp.StatusBadRequest, "Participant not found", ""},
	session.ErrConflict.Code:            {fasthttp.StatusConflict, "Version or turn conflict: reload the state and retry", ""},
	session.ErrValidation.Code:          {fasthttp.StatusBadRequest, "Request validation failed", ""},
	session.ErrStreamFull.Code:          {fasthttp.StatusServiceUnavailable, "Audit stream full: retry later", "1"},
	session.ErrIdempotencyReused.Code: {fasthttp.StatusUnprocessableEntity,
		"Idempotency-Key already used for a different request: send a new key for a new request", ""},
	session.ErrUnavailable.Code: {fasthttp.StatusServiceUnavailable,
		"Redis is unreachable: nothing was changed, retry later", "1"},
	session.ErrOutcomeUnknown.Code: {fasthttp.StatusServiceUnavailable,
		"Redis did not answer in time: the change may or may not have been applied. Re-read the session's state, " +
			"or retry with the same Idempotency-Key to get its outcome", "1"},
	CodeRateLimited:          {fasthttp.StatusTooManyRequests, "Too many requests", ""},
	CodeUnsupportedMediaType: {fasthttp.StatusUnsupportedMediaType, "A request body must be JSON: send Content-Type: application/json", ""},
	CodePersistenceDisabled:  {fasthttp.StatusServiceUnavailable, "Persistence is off: DATABASE_URL is not set on this instance", ""},
	CodeNotFound:             {fasthttp.StatusNotFound, "Route not found", ""},
	CodeMethodNotAllowed:     {fasthttp.StatusMethodNotAllowed, "Method not allowed", ""},
	CodeUnauthenticated:      {fasthttp.StatusUnauthorized, "A valid bearer token is required", ""},
	CodeForbidden:            {fasthttp.StatusForbidden, "The token does not grant this right on this session", ""},
	CodeInternal:             {fasthttp.StatusInternalServerError, "Internal server error", ""},
}

// FieldError names one rejected field, Zod style: field is the dotted path.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every rejected field of a request.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return CodeValidation
	}
	return CodeValidation + ": " + e.Fields[0].Field + ": " + e.Fields[0].Message
}

func invalid(field, message string) *ValidationError {
	return &ValidationError{Fields: []FieldError{{field, message}}}
}

// callError is the failure of one call (op) on session id; Write uses both
// to say what would help, and unwraps to the cause for everything else.
type callError struct {
	op, id string
	err    error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// transitionMessage says why op was refused in the session's status
// (details.from, as the script reported it) and which call would help. The
// paths are the routes' templates, as README.md lists them.
func transitionMessage(op, id string, details []byte) string {
	var d struct{ From string }
	if json.Unmarshal(details, &d) != nil || d.From == "" {
		return table[session.ErrInvalidTransition.Code].message
	}
	is := "Session " + id + " is " + d.From + ": "
	switch d.From {
	case "completed", "expired", "cancelled":
		return is + "it has ended and cannot " + op + "; create a new session (POST /v1/sessions)"
	}
	switch op + " " + d.From {
	case "switch pending", "pause pending":
		return is + "start it first (POST /v1/sessions/{id}/start)"
	case "resume pending":
		return is + "it has not started, so there is nothing to resume; start it (POST /v1/sessions/{id}/start)"
	case "start running":
		return is + "it has already started; switch turns (POST /v1/sessions/{id}/switch) or pause it (POST /v1/sessions/{id}/pause)"
	case "start paused":
		return is + "it has already started; resume it (POST /v1/sessions/{id}/resume)"
	case "switch paused":
		return is + "resume it first (POST /v1/sessions/{id}/resume)"
	case "pause paused":
		return is + "it is already paused; resume it when play goes on (POST /v1/sessions/{id}/resume)"
	case "resume running":
		return is + "it is not paused, so there is nothing to resume; pause it first (POST /v1/sessions/{id}/pause)"
	}
	return is + "it cannot " + op + " from here"
}

// codeError is an error that only needs a code, such as a missing route.
type codeError string

func (e codeError) Error() string { return string(e) }

// Errors writes every error response; the router's panic, not-found and
// method-not-allowed handlers come here too.
type Errors struct {
	Debug bool // show a 500's internal cause in its body (DEBUG_ERRORS); the log always has it
	Log   *slog.Logger
}

// userValue key under which Write leaves the cause for the request log.
const causeKey = "sk.cause"

// Write answers ctx with err's status and {"error":{code,message,details}}.
func (e *Errors) Write(ctx *fasthttp.RequestCtx, err error) {
	code, details := CodeInternal, []byte(nil)
	var se *session.Error
	var ve *ValidationError
	var ce codeError
	switch {
	case errors.As(err, &ve):
		code = CodeValidation
		details, _ = json.Marshal(ve.Fields)
	case errors.As(err, &se):
		code, details = se.Code, se.Details
		if code == CodeValidation && len(details) > 0 && details[0] == '{' {
			// The scripts name one field as an object; the API always lists.
			details = append(append([]byte{'['}, details...), ']')
		}
	case errors.As(err, &ce):
		code = string(ce)
	}
	k, ok := table[code]
	if !ok {
		code, k = CodeInternal, table[CodeInternal]
	}
	msg := k.message
	var call *callError
	if code == session.ErrInvalidTransition.Code && errors.As(err, &call) {
		msg = transitionMessage(call.op, call.id, details)
	}
	if code == CodeInternal && e.Debug && err != nil {
		msg = err.Error()
	}
	if k.retry != "" {
		ctx.Response.Header.Set("Retry-After", k.retry)
	}
	ctx.SetUserValue(causeKey, err)
	writeError(ctx, k.status, code, msg, details)
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string, details []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentJSON)
	m, _ := json.Marshal(msg)
	b := append(ctx.Response.Body()[:0], `{"error":{"code":"`...)
	b = append(b, code...)
	b = append(b, `","message":`...)
	b = append(b, m...)
	if len(details) > 0 {
		b = append(b, `,"details":`...)
		b = append(b, details...)
	}
	ctx.Response.SetBodyRaw(append(b, "}}"...))
}

// Panic answers a handler panic with a 500 (the router's PanicHandler).
func (e *Errors) Panic(ctx *fasthttp.RequestCtx, v any) {
	err, ok := v.(error)
	if !ok {
		err = panicError{v}
	}
	e.Log.Error("handler panic", "request_id", string(ctx.Response.Header.Peek(HeaderRequestID)), "panic", v)
	ctx.Response.ResetBody()
	e.Write(ctx, err)
}

type panicError struct{ v any }

func (p panicError) Error() string {
	b, _ := json.Marshal(p.v)
	return "panic: " + string(b)
}

// NotFound answers an unknown route.
func (e *Errors) NotFound(ctx *fasthttp.RequestCtx) { e.Write(ctx, codeError(CodeNotFound)) }

// MethodNotAllowed answers a known route called with the wrong method.
func (e *Errors) MethodNotAllowed(ctx *fasthttp.RequestCtx) {
	e.Write(ctx, codeError(CodeMethodNotAllowed))
}

// ReadErrorKey is the user value under which the server's ErrorHandler
// leaves the error fasthttp met reading the request.
const ReadErrorKey = "sk.read_error"

// BadRequest answers a request fasthttp could not read (the server's
// ErrorHandler puts the error under ReadErrorKey): a body over the limit
// or a malformed request is a 400.
func (e *Errors) BadRequest(ctx *fasthttp.RequestCtx) {
	err, _ := ctx.UserValue(ReadErrorKey).(error)
	msg := "malformed request"
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		msg = "request body exceeds the size limit"
	}
	e.Write(ctx, invalid("body", msg))
}

// Statuses returns the HTTP status of every code the table answers
// (docs/openapi.yaml is checked against it).
func Statuses() map[string]int {
	m := make(map[string]int, len(table))
	for code, k := range table {
		m[code] = k.status
	}
	return m
}
