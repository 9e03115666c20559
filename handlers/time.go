package handlers

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/redisclock"
)

// Time serves GET /v1/time. timestamp_ms is Redis time in whole ms, an
// integer as the original's Date.now() was (V1_API.md: *_ms are
// integers), so it never decreases; timestamp_us is the same reading in µs
// and strictly increases however often it is called. server_received_us
// and server_sent_us bracket the handler so a client can subtract the
// server's share of the round trip.
func Time(clk redisclock.Source) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		recv := clk.Now()
		now := clk.Now()
		b := ctx.Response.Body()[:0]
		b = append(b, `{"timestamp_ms":`...)
		b = strconv.AppendInt(b, now/1000, 10)
		b = append(b, `,"server_version":"2.0.0","drift_tolerance_ms":50,"timestamp_us":`...)
		b = strconv.AppendInt(b, now, 10)
		b = append(b, `,"server_received_us":`...)
		b = strconv.AppendInt(b, recv, 10)
		b = append(b, `,"server_sent_us":`...)
		b = strconv.AppendInt(b, clk.Now(), 10)
		b = append(b, '}')
		ctx.SetContentTypeBytes(contentJSON)
		ctx.Response.SetBodyRaw(b)
	}
}
