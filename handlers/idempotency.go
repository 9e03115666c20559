package handlers

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/session"
)

// Idempotency-Key (README "Idempotency-Key"): a client names a mutating
// request, and a repeat gets the first reply back instead of a second
// transition. The engine keeps the reply in the session's slot, inside the
// same script as the transition, so "applied" and "kept" cannot part.
var (
	headerIdemKey  = []byte("Idempotency-Key")
	headerReplayed = "Idempotent-Replayed"
)

// ActorKey is the user value under which authentication leaves the
// caller's identity (a token's sub) for the audit trail; "" or unset: none.
const ActorKey = "sk.actor"

// maxIdemKey bounds a key: it becomes part of a Redis key name.
const maxIdemKey = 255

// NewCall reads the request's Idempotency-Key and actor into the
// *session.Call that op (the route's operation) passes to the engine; nil
// when the request has neither. The fingerprint covers what makes two
// requests the same: op, the actor, If-Match and the body.
func NewCall(ctx *fasthttp.RequestCtx, op string) (*session.Call, error) {
	actor, _ := ctx.UserValue(ActorKey).(string)
	key := ctx.Request.Header.PeekBytes(headerIdemKey)
	if len(key) == 0 {
		if actor == "" {
			return nil, nil
		}
		return &session.Call{Actor: actor}, nil
	}
	// The draft's form is a structured-field string ("..."); bare tokens,
	// as most clients send them, are taken too.
	if n := len(key); n >= 2 && key[0] == '"' && key[n-1] == '"' {
		key = key[1 : n-1]
	}
	if len(key) == 0 || len(key) > maxIdemKey || !printable(key) {
		return nil, invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(op), []byte(actor), ctx.Request.Header.PeekBytes(ifMatch), ctx.PostBody()} {
		var n [8]byte
		for i, l := 0, len(part); i < 8; i, l = i+1, l>>8 {
			n[i] = byte(l)
		}
		h.Write(n[:]) // length-prefixed, so no two splits of the bytes collide
		h.Write(part)
	}
	return &session.Call{IdemKey: string(key), Fingerprint: hex.EncodeToString(h.Sum(nil)), Actor: actor}, nil
}

// markReplayed tells the client that the reply is the kept one.
func markReplayed(ctx *fasthttp.RequestCtx, c *session.Call) {
	if c != nil && c.Replayed {
		ctx.Response.Header.Set(headerReplayed, "true")
	}
}
