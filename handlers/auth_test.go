package handlers

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestTokenText: RedactToken hides every token= value of a logged URL,
// and bearer takes the token of an "Authorization: Bearer" header.
func TestTokenText(t *testing.T) {
	t.Parallel()
	bearerOf := func(h string) string {
		var ctx fasthttp.RequestCtx
		if h != "" {
			ctx.Request.Header.Set("Authorization", h)
		}
		return bearer(&ctx)
	}
	for _, fn := range []struct {
		name  string
		f     func(string) string
		cases map[string]string
	}{
		{"RedactToken", RedactToken, map[string]string{
			"":                                      "",
			"/ws?sessionId=abc":                     "/ws?sessionId=abc",
			"/ws?sessionId=abc&token=eyJ.a.b":       "/ws?sessionId=abc&token=REDACTED",
			"/ws?token=eyJ.a.b&sessionId=abc":       "/ws?token=REDACTED&sessionId=abc",
			`GET "/ws?token=eyJ.a.b" - x`:           `GET "/ws?token=REDACTED" - x`,
			"/ws?token=a&x=1&token=b":               "/ws?token=REDACTED&x=1&token=REDACTED",
			"/ws?mytoken=keep&token=eyJ":            "/ws?mytoken=keep&token=REDACTED",
			"#0000 - 127.0.0.1 - GET /ws?token=eyJ": "#0000 - 127.0.0.1 - GET /ws?token=REDACTED",
		}},
		{"bearer", bearerOf, map[string]string{
			"":                "",
			"Bearer abc":      "abc",
			"bearer abc":      "abc",
			"BEARER  abc ":    "abc",
			"Basic abc":       "",
			"Bearer":          "",
			"Bearerabc":       "",
			"Token abc.d.e.f": "",
		}},
	} {
		for in, want := range fn.cases {
			if got := fn.f(in); got != want {
				t.Errorf("%s(%q) = %q, want %q", fn.name, in, got, want)
			}
		}
	}
}
