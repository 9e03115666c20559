package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/auth"
)

// BenchmarkHTTPSwitchAuth measures POST /switch with AUTH_MODE=off beside
// AUTH_MODE=jwt, in one run on the machine's Redis: an HS256 token
// (AUTH_JWT_SECRET) and an RS256 one (AUTH_JWT_PUBLIC_KEY_FILE, 2048
// bits), each connection with a host token for its own session. Rate
// limits and the request log are off in all three, so the difference is
// the auth step. Reports p50 and p99 latency (µs) and throughput (req/s);
// auth's BenchmarkVerify gives the verification alone.
//
//	go test -run '^$' -bench HTTPSwitchAuth -benchtime 20000x -count 3 .
func BenchmarkHTTPSwitchAuth(b *testing.B) {
	rurl := "redis://" + testRedisAddr() + "?pool_size=128"
	base := map[string]string{"REDIS_URL": rurl, "RATE_LIMIT_ENABLED": "false", "LOG_REQUESTS": "false"}
	with := func(over map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range over {
			env[k] = v
		}
		return env
	}
	off := benchServer(b, base, nil)
	hs := benchServer(b, with(map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": authSecret,
		"AUTH_JWT_ISSUER": authIssuer, "AUTH_JWT_AUDIENCE": authAudience}), nil)
	rs := benchServer(b, with(map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_PUBLIC_KEY_FILE": authRSAFile(b), "AUTH_JWT_SECRET": authSecret,
		"AUTH_JWT_ISSUER": authIssuer, "AUTH_JWT_AUDIENCE": authAudience}), nil)

	const maxConns = 64
	admin := "Bearer " + adminToken(b)
	offIDs := benchSessionsAuth(b, off, maxConns, "")
	hsIDs := benchSessionsAuth(b, hs, maxConns, admin)
	rsIDs := benchSessionsAuth(b, rs, maxConns, admin)
	hsTok := make([]string, maxConns)
	rsTok := make([]string, maxConns)
	for i := range maxConns {
		hsTok[i] = "Bearer " + mint(b, auth.RoleHost, []string{hsIDs[i]}, "", 24*time.Hour)
		rsTok[i] = "Bearer " + rsaToken(b, rsIDs[i])
	}
	for _, conns := range []int{1, 64} {
		c := "/conns=" + strconv.Itoa(conns)
		b.Run("auth-off"+c, func(b *testing.B) {
			runHTTPLoadAuth(b, off, conns, func(w int) (string, string) { return "/v1/sessions/" + offIDs[w] + "/switch", "" })
		})
		b.Run("auth-jwt-HS256"+c, func(b *testing.B) {
			runHTTPLoadAuth(b, hs, conns, func(w int) (string, string) { return "/v1/sessions/" + hsIDs[w] + "/switch", hsTok[w] })
		})
		b.Run("auth-jwt-RS256"+c, func(b *testing.B) {
			runHTTPLoadAuth(b, rs, conns, func(w int) (string, string) { return "/v1/sessions/" + rsIDs[w] + "/switch", rsTok[w] })
		})
	}
}

func rsaToken(b *testing.B, id string) string {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "bench", "role": "host",
		"sessions": []string{id}, "iss": authIssuer, "aud": authAudience,
		"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()}).SignedString(authRSA())
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// benchSessionsAuth is benchSessions with an Authorization header ("":
// none) and day-long clocks: the sessions a conns=1 run leaves idle keep
// running for the whole benchmark.
func benchSessionsAuth(b *testing.B, addr string, n int, authz string) []string {
	b.Helper()
	var hdr []string
	if authz != "" {
		hdr = []string{"Authorization", authz}
	}
	ids := make([]string, n)
	for i := range ids {
		id, _, body := newSessionBody(2, "")
		body = strings.ReplaceAll(body, `"total_time_ms":60000`, `"total_time_ms":86400000`)
		ids[i] = id
		if r := doReq(b, "POST", "http://"+addr+"/v1/sessions", body, hdr...); r.status != 201 {
			b.Fatal(r.status, string(r.body))
		}
		if r := doReq(b, "POST", "http://"+addr+"/v1/sessions/"+id+"/start", "", hdr...); r.status != 200 {
			b.Fatal(r.status, string(r.body))
		}
		b.Cleanup(func() {
			doReq(b, "DELETE", "http://"+addr+"/v1/sessions/"+id, "", hdr...)
		})
	}
	return ids
}

// runHTTPLoadAuth is runHTTPLoad with each worker's Authorization header
// ("" for none).
func runHTTPLoadAuth(b *testing.B, addr string, conns int, req func(worker int) (path, authz string)) {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: conns, ReadTimeout: 10 * time.Second}
	runLoad(b, conns, func(w int) func() error {
		rq, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		path, authz := req(w)
		rq.SetRequestURI("http://" + addr + path)
		rq.Header.SetMethod("POST")
		if authz != "" {
			rq.Header.Set("Authorization", authz)
		}
		return func() error {
			if err := hc.Do(rq, resp); err != nil {
				return err
			}
			if resp.StatusCode() != 200 {
				return &statusErr{resp.StatusCode(), string(resp.Body())}
			}
			return nil
		}
	})
}
