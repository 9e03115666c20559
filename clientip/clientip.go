// Package clientip names the client of a request the same way for the
// HTTP API's rate limits and the WebSocket relay's per-IP cap.
package clientip

import (
	"bytes"
	"net"

	"github.com/valyala/fasthttp"
)

// Of is the peer address, or with trustProxy (TRUST_PROXY: only behind a
// proxy you control, which sets the header) the first X-Forwarded-For
// entry when it is an IP. The result is canonical (net.IP.String), so
// spellings of one address share one budget.
func Of(ctx *fasthttp.RequestCtx, trustProxy bool) string {
	if trustProxy {
		if xff := ctx.Request.Header.Peek("X-Forwarded-For"); len(xff) > 0 {
			if i := bytes.IndexByte(xff, ','); i >= 0 {
				xff = xff[:i]
			}
			if ip := net.ParseIP(string(bytes.TrimSpace(xff))); ip != nil {
				return ip.String()
			}
		}
	}
	return ctx.RemoteIP().String()
}
