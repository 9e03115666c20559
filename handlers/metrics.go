package handlers

import (
	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// Metrics serves GET /metrics in Prometheus text format: each component's
// set (read at each call, so components can add theirs during wiring)
// plus Go runtime and process metrics.
func Metrics(sets *[]*metrics.Set) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		for _, s := range *sets {
			s.WritePrometheus(ctx)
		}
		metrics.WriteProcessMetrics(ctx)
	}
}
