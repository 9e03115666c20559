package main

import (
	"slices"
	"strconv"
	"sync"
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
	off := benchServer(b, benchEnv(nil), nil)
	hs := benchServer(b, benchEnv(map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": authSecret,
		"AUTH_JWT_ISSUER": authIssuer, "AUTH_JWT_AUDIENCE": authAudience}), nil)
	rs := benchServer(b, benchEnv(map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_PUBLIC_KEY_FILE": authRSAFile(b), "AUTH_JWT_SECRET": authSecret,
		"AUTH_JWT_ISSUER": authIssuer, "AUTH_JWT_AUDIENCE": authAudience}), nil)

	const maxConns = 64
	admin := "Bearer " + adminToken(b)
	offIDs := benchSessions(b, off, maxConns, "")
	hsIDs := benchSessions(b, hs, maxConns, admin)
	rsIDs := benchSessions(b, rs, maxConns, admin)
	hsTok := make([]string, maxConns)
	rsTok := make([]string, maxConns)
	for i := range maxConns {
		hsTok[i] = "Bearer " + mint(b, auth.RoleHost, []string{hsIDs[i]}, "", 24*time.Hour)
		rsTok[i] = "Bearer " + rsaToken(b, rsIDs[i])
	}
	modes := []struct {
		name, addr string
		ids, toks  []string
	}{{"off", off, offIDs, nil}, {"HS256", hs, hsIDs, hsTok}, {"RS256", rs, rsIDs, rsTok}}
	for _, conns := range []int{1, 64} {
		c := "/conns=" + strconv.Itoa(conns)
		// The three servers in turn, request by request, so a change in the
		// machine's load (2 shared vCPUs) reaches all three alike: the p50s
		// compare. The runs below give each one's capacity alone.
		b.Run("interleaved"+c, func(b *testing.B) {
			lat := make([][][]time.Duration, len(modes))
			for m := range lat {
				lat[m] = make([][]time.Duration, conns)
			}
			hcs := make([]*fasthttp.HostClient, len(modes))
			for m := range modes {
				hcs[m] = &fasthttp.HostClient{Addr: modes[m].addr, MaxConns: conns, ReadTimeout: 10 * time.Second}
			}
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range conns {
				wg.Go(func() {
					rqs := make([]*fasthttp.Request, len(modes))
					resp := fasthttp.AcquireResponse()
					for m, md := range modes {
						var authz string
						if md.toks != nil {
							authz = md.toks[w]
						}
						rqs[m] = postRequest(md.addr, "/v1/sessions/"+md.ids[w]+"/switch", authz)
						if err := post(hcs[m], rqs[m], resp); err != nil { // warm up
							b.Error(err)
							return
						}
					}
					for i := w; i < b.N; i += conns {
						m := i % len(modes)
						t0 := time.Now()
						if err := post(hcs[m], rqs[m], resp); err != nil {
							b.Error(err)
							return
						}
						lat[m][w] = append(lat[m][w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			for m, md := range modes {
				all := slices.Concat(lat[m]...)
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)/2].Microseconds()), md.name+"-p50-µs")
					b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), md.name+"-p99-µs")
				}
			}
		})
		b.Run("auth-off"+c, func(b *testing.B) {
			runHTTPLoad(b, off, conns, func(w int) (string, string) { return "/v1/sessions/" + offIDs[w] + "/switch", "" })
		})
		b.Run("auth-jwt-HS256"+c, func(b *testing.B) {
			runHTTPLoad(b, hs, conns, func(w int) (string, string) { return "/v1/sessions/" + hsIDs[w] + "/switch", hsTok[w] })
		})
		b.Run("auth-jwt-RS256"+c, func(b *testing.B) {
			runHTTPLoad(b, rs, conns, func(w int) (string, string) { return "/v1/sessions/" + rsIDs[w] + "/switch", rsTok[w] })
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
