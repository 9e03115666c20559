package handlers

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestRedactToken(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                      "",
		"/ws?sessionId=abc":                     "/ws?sessionId=abc",
		"/ws?sessionId=abc&token=eyJ.a.b":       "/ws?sessionId=abc&token=REDACTED",
		"/ws?token=eyJ.a.b&sessionId=abc":       "/ws?token=REDACTED&sessionId=abc",
		`GET "/ws?token=eyJ.a.b" - x`:           `GET "/ws?token=REDACTED" - x`,
		"/ws?token=a&x=1&token=b":               "/ws?token=REDACTED&x=1&token=REDACTED",
		"/ws?mytoken=keep&token=eyJ":            "/ws?mytoken=keep&token=REDACTED",
		"#0000 - 127.0.0.1 - GET /ws?token=eyJ": "#0000 - 127.0.0.1 - GET /ws?token=REDACTED",
	} {
		if got := RedactToken(in); got != want {
			t.Errorf("RedactToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBearer(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]string{
		"":                "",
		"Bearer abc":      "abc",
		"bearer abc":      "abc",
		"BEARER  abc ":    "abc",
		"Basic abc":       "",
		"Bearer":          "",
		"Bearerabc":       "",
		"Token abc.d.e.f": "",
	} {
		var ctx fasthttp.RequestCtx
		if h != "" {
			ctx.Request.Header.Set("Authorization", h)
		}
		if got := bearer(&ctx); got != want {
			t.Errorf("bearer(%q) = %q, want %q", h, got, want)
		}
	}
}
