package handlers

import (
	"context"
	"errors"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
)

var healthBody = []byte(`{"status":"ok"}`)

// Health serves GET /health: the process is up.
func Health(ctx *fasthttp.RequestCtx) {
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(healthBody)
}

// Check is one dependency /ready probes, such as Redis or PostgreSQL.
// A Soft check's failure degrades readiness (200, status "degraded")
// instead of failing it: persistence uses it, since the API keeps serving
// while PostgreSQL is down.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	Soft bool
}

type readyBody struct {
	Status   string            `json:"status"`
	Failed   []string          `json:"failed,omitempty"`
	Degraded []string          `json:"degraded,omitempty"`
	Checks   map[string]string `json:"checks"`
}

// Ready serves GET /ready: 200 when every check passes, 200 with status
// "degraded" naming the soft checks that failed, else 503 naming the
// failed ones. checks is read at each call, so components can add theirs
// during wiring. A check's error text (addresses, users, driver messages)
// is shown only with debug; the request log gets it either way.
func Ready(checks *[]Check, timeout time.Duration, debug bool) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		out := readyBody{Status: "ready", Checks: map[string]string{}}
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var causes []error
		for _, ch := range *checks {
			if err := ch.Fn(c); err != nil {
				causes = append(causes, errors.New(ch.Name+": "+err.Error()))
				word := "failed"
				if ch.Soft {
					word = "degraded"
					out.Degraded = append(out.Degraded, ch.Name)
				} else {
					out.Failed = append(out.Failed, ch.Name)
				}
				out.Checks[ch.Name] = word
				if debug {
					out.Checks[ch.Name] = word + ": " + err.Error()
				}
				continue
			}
			out.Checks[ch.Name] = "ok"
		}
		if causes != nil {
			ctx.SetUserValue(causeKey, errors.Join(causes...))
		}
		if len(out.Degraded) > 0 {
			out.Status = "degraded"
		}
		if len(out.Failed) > 0 {
			out.Status = "unavailable"
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		}
		b, _ := json.Marshal(out)
		ctx.SetContentTypeBytes(contentJSON)
		ctx.SetBody(b)
	}
}
