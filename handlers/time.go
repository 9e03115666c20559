package handlers

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// Clock gives Redis TIME in microseconds without a round trip per call,
// strictly increasing (redisclock.Clock).
type Clock interface{ Now() int64 }

// Time serves GET /v1/time. timestamp_ms is Redis time in ms with a
// microsecond fraction, so it strictly increases however often it is
// called; server_received_ms and server_sent_ms bracket the handler so a
// client can subtract the server's share of the round trip.
func Time(clk Clock) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		recv := clk.Now()
		now := clk.Now()
		b := ctx.Response.Body()[:0]
		b = append(b, `{"timestamp_ms":`...)
		b = appendMillis(b, now)
		b = append(b, `,"server_version":"2.0.0","drift_tolerance_ms":50,"server_received_ms":`...)
		b = appendMillis(b, recv)
		b = append(b, `,"server_sent_ms":`...)
		b = appendMillis(b, clk.Now())
		b = append(b, '}')
		ctx.SetContentTypeBytes(contentJSON)
		ctx.Response.SetBodyRaw(b)
	}
}

// appendMillis appends µs as milliseconds with three decimals.
func appendMillis(b []byte, us int64) []byte {
	b = strconv.AppendInt(b, us/1000, 10)
	f := us % 1000
	return append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}
