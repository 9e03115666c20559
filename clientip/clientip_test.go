package clientip

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestOf(t *testing.T) {
	t.Parallel()
	peer := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 4000}
	tests := []struct {
		name  string
		trust bool
		xff   string
		want  string
	}{
		{"peer", false, "", "192.0.2.10"},
		{"header ignored without trust", false, "203.0.113.7", "192.0.2.10"},
		{"first hop", true, "203.0.113.7, 10.0.0.1", "203.0.113.7"},
		{"spaces", true, "  203.0.113.7  ,10.0.0.1", "203.0.113.7"},
		{"IPv6 canonical", true, "2001:DB8:0::1", "2001:db8::1"},
		{"not an IP", true, "unknown, 203.0.113.7", "192.0.2.10"},
		{"with a port", true, "203.0.113.7:80", "192.0.2.10"},
		{"no header", true, "", "192.0.2.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var req fasthttp.Request
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, peer, nil)
			if got := Of(&ctx, tt.trust); got != tt.want {
				t.Errorf("Of = %q, want %q", got, tt.want)
			}
		})
	}
}
