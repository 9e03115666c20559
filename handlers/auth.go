package handlers

import (
	"bytes"
	"errors"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/session"
)

// Auth is the token check of AUTH_MODE=jwt: the middleware's step before
// each route that needs a right (RouteOpts.Right), and the WebSocket
// relay's handshake and AUTH checks. A missing or bad token is 401
// UNAUTHENTICATED, a valid one without the right 403 FORBIDDEN, both
// through the error table.
type Auth struct {
	V      *auth.Verifier
	Errors *Errors
}

// claimsKey is the user value under which the middleware leaves the
// verified claims for the handlers (Claims).
const claimsKey = "sk.claims"

// Claims returns the verified token of the request, nil with auth off.
func Claims(ctx *fasthttp.RequestCtx) *auth.Claims {
	c, _ := ctx.UserValue(claimsKey).(*auth.Claims)
	return c
}

var (
	headerAuthorization = []byte("Authorization")
	bearerPrefix        = []byte("bearer ")
)

// bearer is the token of an "Authorization: Bearer <token>" header, "" if none.
func bearer(ctx *fasthttp.RequestCtx) string {
	h := ctx.Request.Header.PeekBytes(headerAuthorization)
	if len(h) < len(bearerPrefix) || !bytes.EqualFold(h[:len(bearerPrefix)], bearerPrefix) {
		return ""
	}
	return string(bytes.TrimSpace(h[len(bearerPrefix):]))
}

// check verifies the request's token and the route's right on the {id}
// session. Create is checked here for the role only: the session id is in
// the body, and Sessions.Create checks it once parsed (CanCreate). The
// claims come back whenever the token is valid, so the rate limit counts
// by sub even for a refused right.
func (a *Auth) check(ctx *fasthttp.RequestCtx, r auth.Right) (*auth.Claims, error) {
	c, err := a.V.Verify(bearer(ctx))
	if err != nil {
		return nil, err
	}
	ctx.SetUserValue(claimsKey, c)
	ctx.SetUserValue(ActorKey, c.Subject) // the audit actor (NewCall)
	if r == auth.Create {
		if !c.Allows(r) {
			return c, &auth.Denied{Right: r, Role: c.Role}
		}
		return c, nil
	}
	id, _ := ctx.UserValue("id").(string)
	return c, c.Can(r, id)
}

// Deny answers a refused request: 401 with WWW-Authenticate for an
// *auth.Invalid, 403 for an *auth.Denied.
func (a *Auth) Deny(ctx *fasthttp.RequestCtx, err error) {
	var inv *auth.Invalid
	if errors.As(err, &inv) {
		if inv.Reason == auth.ReasonMissing {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="synckairos"`)
		} else {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="synckairos", error="invalid_token"`)
		}
	}
	a.Errors.Write(ctx, authError(err))
}

// authError is err as the error table's UNAUTHENTICATED or FORBIDDEN, with
// details naming the reason or the missing right.
func authError(err error) error {
	var inv *auth.Invalid
	var d *auth.Denied
	switch {
	case errors.As(err, &inv):
		b, _ := json.Marshal(struct {
			Reason string `json:"reason"`
		}{inv.Reason})
		return &authErr{&session.Error{Code: CodeUnauthenticated, Details: b}, err}
	case errors.As(err, &d):
		det := struct {
			Right     string `json:"right"`
			Role      string `json:"role"`
			SessionID string `json:"session_id,omitempty"`
		}{d.Right.String(), d.Role.String(), d.SessionID}
		b, _ := json.Marshal(det)
		return &authErr{&session.Error{Code: CodeForbidden, Details: b}, err}
	}
	return err
}

// authErr carries the code and details for the table, and the cause (why
// the token was refused) for the request log. Neither holds the token.
type authErr struct {
	se    *session.Error
	cause error
}

func (e *authErr) Error() string   { return e.se.Code + ": " + e.cause.Error() }
func (e *authErr) Unwrap() []error { return []error{e.se, e.cause} }

// canCreate is Sessions.Create's scope check once the body named the
// session: nil with auth off.
func canCreate(ctx *fasthttp.RequestCtx, id string) error {
	if c := Claims(ctx); c != nil && !c.Covers(id) {
		return authError(&auth.Denied{Right: auth.Create, Role: c.Role, SessionID: id})
	}
	return nil
}

// pinPlayer makes a player's switch end only its own turn: the script gets
// current_participant_id = the token's participant and answers CONFLICT
// when that participant is not the active one, so a late tap never ends
// someone else's turn. A body naming another participant is refused.
func pinPlayer(ctx *fasthttp.RequestCtx, a *session.SwitchArgs) error {
	c := Claims(ctx)
	if c == nil || c.Role != auth.RolePlayer {
		return nil
	}
	if a.CurrentParticipantID != "" && !strings.EqualFold(a.CurrentParticipantID, c.ParticipantID) {
		b, _ := json.Marshal(struct {
			Right         string `json:"right"`
			Role          string `json:"role"`
			ParticipantID string `json:"participant_id"`
		}{auth.Switch.String(), c.Role.String(), c.ParticipantID})
		return &authErr{&session.Error{Code: CodeForbidden, Details: b},
			errors.New("a player may end only its own turn (current_participant_id names another participant)")}
	}
	a.CurrentParticipantID = c.ParticipantID
	return nil
}

// Handshake checks a WebSocket handshake's token (the ?token= parameter)
// for reading session id, before the upgrade. When refused, ctx has been
// answered (401 or 403) and ok is false.
func (a *Auth) Handshake(ctx *fasthttp.RequestCtx, token, id string) (sub string, until time.Time, ok bool) {
	c, err := a.V.Verify(token)
	if err == nil {
		err = c.Can(auth.Read, id)
	}
	if err != nil {
		a.Deny(ctx, err)
		return "", time.Time{}, false
	}
	return c.Subject, c.Until, true
}

// Refresh checks the token of a WebSocket AUTH message: valid, for the
// same sub as the connection's, and still allowed to read session id. It
// returns the new expiry, or the error code and message to send back.
func (a *Auth) Refresh(token, id, sub string) (until time.Time, code, msg string) {
	c, err := a.V.Verify(token)
	if err == nil && c.Subject != sub {
		err = errors.New("the token is for another sub than the connection's")
	}
	if err == nil {
		err = c.Can(auth.Read, id)
	}
	var inv *auth.Invalid
	switch {
	case err == nil:
		return c.Until, "", ""
	case errors.As(err, &inv):
		return time.Time{}, CodeUnauthenticated, "token " + inv.Reason
	}
	return time.Time{}, CodeForbidden, err.Error()
}

// RedactToken hides the value of every token= query parameter in s (a
// URI, or a log line holding one), so tokens never reach a log.
func RedactToken(s string) string {
	const key = "token="
	i := strings.Index(s, key)
	if i < 0 {
		return s
	}
	var b strings.Builder
	for i >= 0 {
		start := i + len(key)
		// Only a parameter name: "token=" preceded by ?, & or ;.
		if i == 0 || strings.IndexByte("?&;", s[i-1]) >= 0 {
			end := start
			for end < len(s) && strings.IndexByte("& \t\"'\n#", s[end]) < 0 {
				end++
			}
			b.WriteString(s[:start])
			b.WriteString("REDACTED")
			s = s[end:]
		} else {
			b.WriteString(s[:start])
			s = s[start:]
		}
		i = strings.Index(s, key)
	}
	b.WriteString(s)
	return b.String()
}
