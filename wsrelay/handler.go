package wsrelay

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/clientip"
	"github.com/synckairos/synckairos/session"
)

// Handler serves GET /ws?sessionId=<uuid>[&token=<jwt>]. Everything it needs from ctx is
// copied before the upgrade: the connection outlives the RequestCtx. The id
// is lower-cased like the API's, so a client on AD7C… hears the changes
// made through ad7c….
//
// The caps are checked before the upgrade (503, nothing upgraded) and taken
// only in the upgraded connection's handler, which gives the slot back when
// it returns: fasthttp skips that handler when it cannot complete the
// handshake (the 101 fails to write, or the request said Connection: close),
// so a slot taken before Upgrade could be lost for good. Handshakes racing
// for the last slot can pass the check together; the losers are upgraded
// and closed with 1013 at once.
func (r *Relay) Handler(ctx *fasthttp.RequestCtx) {
	id, valid := session.NormalizeID(string(ctx.QueryArgs().Peek("sessionId")))
	var sub string
	var until time.Time
	if r.cfg.Auth != nil {
		var ok bool
		if sub, until, ok = r.cfg.Auth.Handshake(ctx, string(ctx.QueryArgs().Peek("token")), id); !ok {
			r.m.rejectAuth.Inc()
			return
		}
	}
	ip := clientip.Of(ctx, r.cfg.TrustProxy)
	if valid && !r.adm.room(ip) {
		r.m.rejectLimit.Inc()
		ctx.Error("too many connections", fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.SetBytesV("Retry-After", retryAfter) // after Error, which resets the headers
		return
	}
	_ = r.up.Upgrade(ctx, func(conn *websocket.Conn) {
		switch {
		case !valid:
			r.m.rejectID.Inc()
			reject(conn, websocket.ClosePolicyViolation, "sessionId must be a UUID")
			return
		case !r.adm.acquire(ip):
			r.m.rejectLimit.Inc()
			reject(conn, websocket.CloseTryAgainLater, "too many connections")
			return
		}
		defer r.adm.release(ip)
		r.serve(conn, id, sub, until)
	})
}

var retryAfter = []byte("1")

// upgradeError answers a request that cannot be upgraded (wrong Origin, not
// a WebSocket handshake) with a plain HTTP error.
func (r *Relay) upgradeError(ctx *fasthttp.RequestCtx, status int, reason error) {
	if status == fasthttp.StatusForbidden {
		r.m.rejectOrigin.Inc()
	}
	ctx.Response.Header.Set("Sec-Websocket-Version", "13")
	ctx.Error(reason.Error(), status)
}

// reject closes a just-upgraded connection with code and reason.
func reject(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(time.Second))
	// Give the client a moment to answer the close before the TCP close,
	// so it sees the code rather than a reset.
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := conn.NextReader(); err != nil {
			break
		}
	}
	_ = conn.Close()
}

// originChecker allows requests without Origin (non-browser clients), any
// Origin when the list holds "*", and otherwise exact (case-insensitive)
// matches.
func originChecker(origins []string) func(*fasthttp.RequestCtx) bool {
	any := false
	allowed := make([][]byte, 0, len(origins))
	for _, o := range origins {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "*" {
			any = true
		}
		allowed = append(allowed, []byte(o))
	}
	return func(ctx *fasthttp.RequestCtx) bool {
		origin := ctx.Request.Header.Peek("Origin")
		if len(origin) == 0 || any {
			return true
		}
		for _, a := range allowed {
			if bytes.EqualFold(origin, a) {
				return true
			}
		}
		return false
	}
}

// admission enforces the total and per-IP connection caps.
type admission struct {
	max, maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[string]int
}

// room reports whether ip could take a slot now, without taking it.
func (a *admission) room(ip string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.roomLocked(ip)
}

func (a *admission) roomLocked(ip string) bool {
	return !(a.max > 0 && a.total >= a.max || a.maxPerIP > 0 && a.perIP[ip] >= a.maxPerIP)
}

func (a *admission) acquire(ip string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.roomLocked(ip) {
		return false
	}
	a.total++
	a.perIP[ip]++
	return true
}

func (a *admission) admitted() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

func (a *admission) release(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if n := a.perIP[ip] - 1; n > 0 {
		a.perIP[ip] = n
	} else {
		delete(a.perIP, ip)
	}
}
