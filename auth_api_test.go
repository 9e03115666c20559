package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/servertest"
)

// The tests of AUTH_MODE=jwt against the running server: every route ×
// every role × a session in and out of the token's scope, every class of
// bad token, the WebSocket handshake, AUTH and expiry, the player-turn
// race, and the rate limit per sub.

const (
	authSecret   = "test-secret-of-at-least-32-bytes!!"
	authIssuer   = "https://app.test"
	authAudience = "synckairos"
)

// authEnv is a jwt-mode server on the machine's Redis with the HS256
// secret, an RSA public key (for the HS/RS confusion case) and iss/aud.
func authEnv(t testing.TB, over map[string]string) map[string]string {
	env := map[string]string{"REDIS_URL": "redis://" + servertest.RedisAddr(), "AUTH_MODE": "jwt",
		"AUTH_JWT_SECRET": authSecret, "AUTH_JWT_PUBLIC_KEY_FILE": authRSAFile(t),
		"AUTH_JWT_ISSUER": authIssuer, "AUTH_JWT_AUDIENCE": authAudience}
	for k, v := range over {
		env[k] = v
	}
	return env
}

var authRSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func authRSAPEM() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&authRSA().PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func authRSAFile(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "rsa.pem")
	if err := os.WriteFile(p, authRSAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// authPersistEnv is authEnv with persistence: a schema and a Redis of the
// test's own (an instance with DATABASE_URL sets the sticky audit flag on
// its Redis, which the shared one must not get).
func authPersistEnv(t *testing.T) map[string]string {
	addr, _ := startRedisServer(t)
	return authEnv(t, map[string]string{"REDIS_URL": "redis://" + addr,
		"DATABASE_URL": persistURL("127.0.0.1:5432", persistSchema(t))})
}

// mint is a valid token for the test server.
func mint(t testing.TB, role auth.Role, sessions []string, participant string, ttl time.Duration) string {
	t.Helper()
	s, err := auth.Mint([]byte(authSecret), auth.Token{Subject: "sub-" + role.String() + "-" + participant,
		Role: role, Sessions: sessions, ParticipantID: participant, TTL: ttl,
		Issuer: authIssuer, Audience: authAudience}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func adminToken(t testing.TB) string { return mint(t, auth.RoleAdmin, nil, "", time.Hour) }

func bearerH(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// authSession creates a session as admin and brings it to state
// ("pending", "running" or "paused"); it returns the id, the participants
// and the version.
func authSession(t testing.TB, s *apiServer, state string, n int) (string, []string, int64) {
	t.Helper()
	adm := bearerH(adminToken(t))
	id, parts, body := newSessionBody(n, "")
	steps := map[string][]string{"pending": nil, "running": {"start"}, "paused": {"start", "pause"}}[state]
	r := doReq(t, "POST", s.base+"/v1/sessions", body, adm...)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	for _, step := range steps {
		if r = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/"+step, "", adm...); r.status != 200 {
			t.Fatalf("%s: %d %s", step, r.status, r.body)
		}
	}
	t.Cleanup(func() { _, _ = tryReq("DELETE", s.base+"/v1/sessions/"+id, "", adm...) })
	return id, parts, num(r.state(t)["version"])
}

// version is the session's version as admin reads it, 0 when it does not exist.
func version(t *testing.T, s *apiServer, id string) int64 {
	t.Helper()
	r := doReq(t, "GET", s.base+"/v1/sessions/"+id, "", bearerH(adminToken(t))...)
	if r.status == 404 {
		return 0
	}
	if r.status != 200 {
		t.Fatalf("admin get: %d %s", r.status, r.body)
	}
	return num(r.state(t)["version"])
}

// wsDial opens /ws with token; it returns the HTTP status of the handshake
// (101 when upgraded) and the connection.
func wsDial(t *testing.T, s *apiServer, id, token string) (int, *websocket.Conn) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/ws?sessionId=" + id
	if token != "" {
		u += "&token=" + url.QueryEscape(token)
	}
	c, res, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		if res == nil || !errors.Is(err, websocket.ErrBadHandshake) {
			t.Fatalf("dial: %v", err)
		}
		return res.StatusCode, nil
	}
	t.Cleanup(func() { c.Close() })
	return res.StatusCode, c
}

var roles = []auth.Role{auth.RoleAdmin, auth.RoleHost, auth.RolePlayer, auth.RoleViewer}

// TestAuthRoleTable is the table in full: each route, each role,
// the session in the token's sessions and not in them, the exact status;
// and a refused call changes nothing.
func TestAuthRoleTable(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authPersistEnv(t), nil)
	// One persisted session serves the read routes.
	readID, _, _ := authSession(t, s, "running", 2)
	waitFor(t, 10*time.Second, "the events of "+readID, func() bool {
		r := doReq(t, "GET", s.base+"/v1/sessions/"+readID+"/events", "", bearerH(adminToken(t))...)
		return r.status == 200
	})

	// in/out: statuses for admin, host, player, viewer.
	routes := []struct {
		name, method, suffix string // suffix after /v1/sessions/{id}
		state                string // session state before the call; "" = none (create), "read" = readID
		in, out              [4]int
	}{
		{"create", "POST", "", "", [4]int{201, 201, 403, 403}, [4]int{201, 403, 403, 403}},
		{"get", "GET", "", "read", [4]int{200, 200, 200, 200}, [4]int{200, 403, 403, 403}},
		{"events", "GET", "/events", "read", [4]int{200, 200, 200, 200}, [4]int{200, 403, 403, 403}},
		{"websocket", "WS", "", "read", [4]int{101, 101, 101, 101}, [4]int{101, 403, 403, 403}},
		{"start", "POST", "/start", "pending", [4]int{200, 200, 403, 403}, [4]int{200, 403, 403, 403}},
		{"pause", "POST", "/pause", "running", [4]int{200, 200, 403, 403}, [4]int{200, 403, 403, 403}},
		{"resume", "POST", "/resume", "paused", [4]int{200, 200, 403, 403}, [4]int{200, 403, 403, 403}},
		{"complete", "POST", "/complete", "running", [4]int{200, 200, 403, 403}, [4]int{200, 403, 403, 403}},
		{"delete", "DELETE", "", "running", [4]int{204, 204, 403, 403}, [4]int{204, 403, 403, 403}},
		// the player's token names the active participant
		{"switch", "POST", "/switch", "running", [4]int{200, 200, 200, 403}, [4]int{200, 403, 403, 403}},
	}
	for _, rt := range routes {
		for ri, role := range roles {
			for _, in := range []bool{true, false} {
				want := rt.out[ri]
				name := rt.name + "/" + role.String() + "/out-of-scope"
				if in {
					want, name = rt.in[ri], rt.name+"/"+role.String()+"/in-scope"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var id string
					var parts []string
					var before int64
					switch rt.state {
					case "":
						id = uuid.NewString()
					case "read":
						id = readID
					default:
						id, parts, before = authSession(t, s, rt.state, 2)
					}
					scope := []string{id}
					if !in {
						scope = []string{uuid.NewString()}
					}
					participant := ""
					if role == auth.RolePlayer {
						participant = uuid.NewString()
						if parts != nil {
							participant = parts[0] // active once started
						}
					}
					tok := mint(t, role, scope, participant, time.Hour)
					var got int
					var body []byte
					switch {
					case rt.method == "WS":
						got, _ = wsDial(t, s, id, tok)
					case rt.name == "create":
						_, _, b := newSessionBody(2, "")
						b = strings.Replace(b, b[strings.Index(b, `"session_id":"`)+14:][:36], id, 1)
						r := doReq(t, "POST", s.base+"/v1/sessions", b, bearerH(tok)...)
						got, body = r.status, r.body
						if got == 201 {
							t.Cleanup(func() { _, _ = tryReq("DELETE", s.base+"/v1/sessions/"+id, "", bearerH(adminToken(t))...) })
						}
					default:
						r := doReq(t, rt.method, s.base+"/v1/sessions/"+id+rt.suffix, "", bearerH(tok)...)
						got, body = r.status, r.body
					}
					if got != want {
						t.Fatalf("status %d, want %d: %s", got, want, body)
					}
					if want == 403 && rt.method != "WS" {
						e := apiResp{body: body}.errCode(t)
						if e.Error.Code != "FORBIDDEN" || !strings.Contains(string(e.Error.Details), `"right":"`) {
							t.Fatalf("403 body %s", body)
						}
						if rt.state != "read" {
							if v := version(t, s, id); v != before {
								t.Fatalf("a refused %s changed the session: version %d → %d", rt.name, before, v)
							}
						}
					}
				})
			}
		}
	}
}

// TestAuthBadTokens: every class of bad token gets 401 UNAUTHENTICATED
// with WWW-Authenticate on every guarded route and changes nothing; a
// valid token of another session gets 403.
func TestAuthBadTokens(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authEnv(t, nil), nil)
	id, _, _ := authSession(t, s, "running", 2)
	other := uuid.NewString()
	now := time.Now()
	claims := func(over jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "u", "role": "host", "sessions": []string{id}, "iss": authIssuer,
			"aud": authAudience, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		maps.Copy(c, over)
		maps.DeleteFunc(c, func(_ string, v any) bool { return v == nil }) // nil: drop the claim
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name, header string
		status       int
		reason       string // details.reason of a 401; "" for a 403
	}{
		{"no header", "", 401, "missing"},
		{"Basic scheme", "Basic dXNlcjpwYXNz", 401, "missing"},
		{"Bearer without token", "Bearer ", 401, "missing"},
		{"malformed", "Bearer not.a.jwt", 401, "malformed"},
		{"garbage", "Bearer abc", 401, "malformed"},
		{"expired", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), 401, "expired"},
		{"no exp", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"exp": nil})), 401, "expired"},
		{"not yet valid", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})), 401, "not_yet_valid"},
		{"wrong HS256 secret", "Bearer " + sign(jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes"), claims(nil)), 401, "signature"},
		{"wrong RSA key", "Bearer " + sign(jwt.SigningMethodRS256, otherRSA, claims(nil)), 401, "signature"},
		{"alg none", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), 401, "algorithm"},
		{"HS256 signed with the RSA public key", "Bearer " + sign(jwt.SigningMethodHS256, authRSAPEM(), claims(nil)), 401, "signature"},
		{"RS512", "Bearer " + sign(jwt.SigningMethodRS512, authRSA(), claims(nil)), 401, "algorithm"},
		{"wrong iss", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"iss": "https://evil.test"})), 401, "issuer"},
		{"wrong aud", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"aud": "other"})), 401, "audience"},
		{"bad role", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"role": "root"})), 401, "claims"},
		{"player without participant_id", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"role": "player"})), 401, "claims"},
		{"valid, for another session", "Bearer " + sign(jwt.SigningMethodHS256, []byte(authSecret), claims(jwt.MapClaims{"sessions": []string{other}})), 403, ""},
	}
	// The valid RS256 token works: the RSA key is configured.
	if r := doReq(t, "GET", s.base+"/v1/sessions/"+id, "", bearerH(sign(jwt.SigningMethodRS256, authRSA(), claims(nil)))...); r.status != 200 {
		t.Fatalf("valid RS256: %d %s", r.status, r.body)
	}
	routes := []struct{ method, path string }{
		{"POST", "/v1/sessions"},
		{"GET", "/v1/sessions/" + id},
		{"POST", "/v1/sessions/" + id + "/switch"},
		{"POST", "/v1/sessions/" + id + "/pause"},
		{"POST", "/v1/sessions/" + id + "/complete"},
		{"DELETE", "/v1/sessions/" + id},
	}
	before := version(t, s, id)
	for _, tc := range cases {
		for _, rt := range routes {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			body := ""
			if rt.path == "/v1/sessions" {
				_, _, body = newSessionBody(2, "")
			}
			r := doReq(t, rt.method, s.base+rt.path, body, hdr...)
			want := tc.status // create's 403: a host, but the body's session is not the token's
			if r.status != want {
				t.Errorf("%s, %s %s: %d, want %d: %s", tc.name, rt.method, rt.path, r.status, want, r.body)
				continue
			}
			e := r.errCode(t)
			switch {
			case want == 401:
				wa := r.header.Get("WWW-Authenticate")
				wantInvalid := tc.reason != "missing"
				if e.Error.Code != "UNAUTHENTICATED" || !strings.HasPrefix(wa, "Bearer") ||
					strings.Contains(wa, `error="invalid_token"`) != wantInvalid ||
					string(e.Error.Details) != `{"reason":"`+tc.reason+`"}` {
					t.Errorf("%s, %s %s: %s, WWW-Authenticate %q", tc.name, rt.method, rt.path, r.body, wa)
				}
			case e.Error.Code != "FORBIDDEN" || r.header.Get("WWW-Authenticate") != "":
				t.Errorf("%s, %s %s: %s", tc.name, rt.method, rt.path, r.body)
			}
		}
		// The WebSocket handshake, with the same token as ?token=.
		tok := strings.TrimSpace(strings.TrimPrefix(tc.header, "Bearer "))
		if strings.HasPrefix(tc.header, "Basic") {
			tok = ""
		}
		if st, _ := wsDial(t, s, id, tok); st != tc.status {
			t.Errorf("%s, WebSocket: %d, want %d", tc.name, st, tc.status)
		}
	}
	if v := version(t, s, id); v != before || v == 0 {
		t.Fatalf("bad tokens changed the session: version %d → %d", before, v)
	}
	if strings.Contains(s.logs.String(), "eyJ") {
		t.Fatalf("a token reached the log:\n%s", s.logs.String())
	}
}

// TestAuthOpenRoutes walks every registered route: without a token, only
// the always-open ones answer anything but 401.
func TestAuthOpenRoutes(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authPersistEnv(t), nil)
	open := func(p string) bool {
		switch p {
		case "/health", "/ready", "/metrics", "/v1/time", "/openapi.json":
			return true
		}
		return strings.HasPrefix(p, "/sdk/") || strings.HasPrefix(p, "/demo/")
	}
	n := 0
	for method, paths := range s.app.router.List() {
		for _, p := range paths {
			concrete := strings.ReplaceAll(p, "{id}", uuid.NewString())
			if i := strings.Index(concrete, "{"); i >= 0 {
				concrete = concrete[:i] + "x"
			}
			r := doReq(t, method, s.base+concrete, "")
			n++
			if open(p) {
				if r.status == 401 || r.status == 403 {
					t.Errorf("%s %s is always open, got %d", method, p, r.status)
				}
			} else if r.status != 401 {
				t.Errorf("%s %s without a token: %d, want 401: %s", method, p, r.status, r.body)
			}
		}
	}
	if n < 13 {
		t.Fatalf("only %d routes walked", n)
	}
}

// TestAuthPlayerTurnRace: the active player and a player whose turn it is
// not tap at the same moment, many times over. Only the active one's
// switch lands; the other is 409 CONFLICT however the two interleave,
// because its call is pinned to its own participant. A body naming
// someone else's turn is 403.
func TestAuthPlayerTurnRace(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authEnv(t, nil), nil)
	for round := range 20 {
		id, parts, v := authSession(t, s, "running", 3)
		active := mint(t, auth.RolePlayer, []string{id}, parts[0], time.Hour)
		late := mint(t, auth.RolePlayer, []string{id}, parts[2], time.Hour)
		var wg sync.WaitGroup
		var ra, rl apiResp
		start := make(chan struct{})
		wg.Go(func() { <-start; ra = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "", bearerH(active)...) })
		wg.Go(func() { <-start; rl = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "", bearerH(late)...) })
		close(start)
		wg.Wait()
		if ra.status != 200 || rl.status != 409 {
			t.Fatalf("round %d: active %d %s, late %d %s", round, ra.status, ra.body, rl.status, rl.body)
		}
		r := doReq(t, "GET", s.base+"/v1/sessions/"+id, "", bearerH(late)...)
		if st := r.state(t); st["active_participant_id"] != parts[1] || num(st["version"]) != v+1 {
			t.Fatalf("round %d: state after the race %v", round, st)
		}
		if round == 0 {
			// Naming the active participant in the body does not help.
			r = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", `{"current_participant_id":"`+parts[1]+`"}`, bearerH(late)...)
			if e := r.errCode(t); r.status != 403 || e.Error.Code != "FORBIDDEN" {
				t.Fatalf("player naming another's turn: %d %s", r.status, r.body)
			}
			// Naming itself out of turn is the script's CONFLICT, as with no body.
			r = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", `{"current_participant_id":"`+parts[2]+`"}`, bearerH(late)...)
			if r.status != 409 {
				t.Fatalf("player naming itself out of turn: %d %s", r.status, r.body)
			}
			if got := version(t, s, id); got != v+1 {
				t.Fatalf("refused switches changed the session: %d", got)
			}
		}
	}
}

// TestAuthRateLimitPerSub: with a token the budget is the sub's, wherever
// it calls from; without one (or with a bad one) it is the IP's.
func TestAuthRateLimitPerSub(t *testing.T) {
	t.Parallel()
	s := startAPI(t, authEnv(t, map[string]string{"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_IP_MAX": "3",
		"RATE_LIMIT_IP_WINDOW": "1h", "TRUST_PROXY": "true"}), nil)
	id := uuid.NewString()
	// An IP of this test's own: the machine's Redis keeps every budget.
	u := uuid.New()
	ip := []string{"X-Forwarded-For", "10." + strconv.Itoa(int(u[0])) + "." + strconv.Itoa(int(u[1])) + "." + strconv.Itoa(int(u[2]))}
	sub := func(name string) []string {
		tok, err := auth.Mint([]byte(authSecret), auth.Token{Subject: name, Role: auth.RoleViewer, Sessions: []string{id},
			TTL: time.Hour, Issuer: authIssuer, Audience: authAudience}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return bearerH(tok)
	}
	a, b := sub("rl-a-"+uuid.NewString()), sub("rl-b-"+uuid.NewString())
	get := func(hdr ...string) int {
		return doReq(t, "GET", s.base+"/v1/sessions/"+id, "", append(hdr, ip...)...).status
	}
	for i := range 3 {
		if st := get(a...); st != 404 {
			t.Fatalf("sub a, call %d: %d", i, st)
		}
	}
	if st := get(a...); st != 429 {
		t.Fatalf("sub a, 4th call: %d, want 429", st)
	}
	if st := get(b...); st != 404 {
		t.Fatalf("sub b from the same IP: %d, want its own budget", st)
	}
	// Without a valid token: the IP's budget, untouched by a and b.
	for i := range 3 {
		if st := get(); st != 401 {
			t.Fatalf("no token, call %d: %d", i, st)
		}
	}
	if st := get("Authorization", "Bearer junk"); st != 429 {
		t.Fatalf("bad token past the IP budget: %d, want 429", st)
	}
}

// TestAuthModeOffWarns: off is the default, logs the WARN and needs no token.
func TestAuthModeOffWarns(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	if !strings.Contains(s.logs.String(), "AUTH_MODE=off: anyone who knows a session id can control it") {
		t.Fatalf("no WARN:\n%s", s.logs.String())
	}
	id, _, body := newSessionBody(2, "")
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create without token: %d %s", r.status, r.body)
	}
	if r := doReq(t, "DELETE", s.base+"/v1/sessions/"+id, ""); r.status != 204 {
		t.Fatalf("delete without token: %d %s", r.status, r.body)
	}
}

func TestAuthConfig(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		env map[string]string
		ok  bool
	}{
		"default off":       {nil, true},
		"jwt with secret":   {map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": authSecret}, true},
		"jwt without key":   {map[string]string{"AUTH_MODE": "jwt"}, false},
		"unknown mode":      {map[string]string{"AUTH_MODE": "basic"}, false},
		"short secret":      {map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": "short"}, false},
		"leeway 0":          {map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": authSecret, "AUTH_JWT_LEEWAY": "0s"}, true},
		"leeway too large":  {map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": authSecret, "AUTH_JWT_LEEWAY": "1h"}, false},
		"leeway not a time": {map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_SECRET": authSecret, "AUTH_JWT_LEEWAY": "soon"}, false},
	} {
		if _, err := loadConfig(apiEnv(tc.env)); (err == nil) != tc.ok {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// A key file that does not parse stops the start.
	cfg, err := loadConfig(apiEnv(map[string]string{"AUTH_MODE": "jwt", "AUTH_JWT_PUBLIC_KEY_FILE": "/nonexistent.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newApp(t.Context(), cfg, newLogger(cfg, &syncBuffer{})); err == nil || !strings.Contains(err.Error(), "AUTH_JWT_PUBLIC_KEY_FILE") {
		t.Fatalf("newApp with a missing key file: %v", err)
	}
}

// TestTokenCommand: `synckairos token` prints a token the server accepts
// with the given role, sessions and participant.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	env := apiEnv(map[string]string{"AUTH_JWT_SECRET": authSecret})
	var out strings.Builder
	id, p := uuid.NewString(), uuid.NewString()
	if err := run(t.Context(), []string{"token", "--role", "player", "--session", id, "--participant", p, "--ttl", "10m"}, env, &out); err != nil {
		t.Fatal(err)
	}
	cfg, _ := loadConfig(env)
	v, err := auth.New(t.Context(), cfg.Auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != auth.RolePlayer || c.ParticipantID != p || !c.Covers(id) || c.Covers(uuid.NewString()) ||
		c.Subject != "dev-player" || time.Until(c.Until) > 11*time.Minute {
		t.Fatalf("claims %+v", c)
	}
	for name, args := range map[string][]string{
		"no role":                      {"token", "--session", "*"},
		"player without --participant": {"token", "--role", "player", "--session", "*"},
		"no session":                   {"token", "--role", "host"},
	} {
		if err := run(t.Context(), args, env, &out); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := run(t.Context(), []string{"token", "--role", "host", "--session", "*"}, apiEnv(nil), &out); err == nil {
		t.Error("without AUTH_JWT_SECRET: no error")
	}
}

// TestAuthAuditActor: with auth on, each recorded event names its actor,
// the sub of the token that made it, in the events route ("who ended my
// turn?"); the same calls without auth record none.
func TestAuthAuditActor(t *testing.T) {
	t.Parallel()
	env := authPersistEnv(t)
	s := startAPI(t, env, nil)
	id, parts, body := newSessionBody(2, "")
	tokenFor := func(sub string, role auth.Role, participant string) []string {
		tok, err := auth.Mint([]byte(authSecret), auth.Token{Subject: sub, Role: role, Sessions: []string{id},
			ParticipantID: participant, TTL: time.Hour, Issuer: authIssuer, Audience: authAudience}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return bearerH(tok)
	}
	alice := tokenFor("alice@host", auth.RoleHost, "")
	bob := tokenFor("bob@player", auth.RolePlayer, parts[0])
	for _, c := range []struct {
		path, body string
		hdr        []string
		want       int
	}{
		{"/v1/sessions", body, alice, 201},
		{"/v1/sessions/" + id + "/start", "", alice, 200},
		{"/v1/sessions/" + id + "/switch", "", bob, 200},
		{"/v1/sessions/" + id + "/pause", "", alice, 200},
	} {
		if r := doReq(t, "POST", s.base+c.path, c.body, c.hdr...); r.status != c.want {
			t.Fatalf("%s: %d %s", c.path, r.status, r.body)
		}
	}
	var events []struct {
		Version   int64   `json:"version"`
		EventType string  `json:"event_type"`
		Actor     *string `json:"actor"`
	}
	waitFor(t, 10*time.Second, "4 events recorded", func() bool {
		r := doReq(t, "GET", s.base+"/v1/sessions/"+id+"/events", "", bob...)
		var page struct {
			Data json.RawMessage `json:"data"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &page) != nil || json.Unmarshal(page.Data, &events) != nil {
			return false
		}
		return len(events) == 4
	})
	want := []string{"alice@host", "alice@host", "bob@player", "alice@host"}
	for i, e := range events {
		if e.Actor == nil || *e.Actor != want[i] {
			t.Fatalf("event %d (%s): actor %v, want %q", e.Version, e.EventType, e.Actor, want[i])
		}
	}
	// The column behind the route, which the worker fills from the stream
	// entry's actor field alone.
	var n int64
	pool := pgPool(t, env["DATABASE_URL"])
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM sync_events WHERE session_id = $1 AND actor = 'bob@player' AND event_type = 'cycle_switched'`, id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("sync_events.actor of the switch: %d %v", n, err)
	}
}
