package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testKeys are generated once: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}) {
	k.rsa, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	return k
})

func pemFile(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// claims returns a valid host payload, adjusted by the caller.
func claims(over map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "user-1", "role": "host", "sessions": []string{"*"},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	maps.Copy(c, over)
	maps.DeleteFunc(c, func(_ string, v any) bool { return v == nil }) // nil: drop the claim
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
	}
	v, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	t.Parallel()
	k := testKeys()
	rsaPEM := pemFile(t, &k.rsa.PublicKey)
	rsaPEMBytes, _ := os.ReadFile(rsaPEM)
	hs := newVerifier(t, Config{Secret: testSecret})
	hsAndRS := newVerifier(t, Config{Secret: testSecret, PublicKeyFile: rsaPEM})
	rs := newVerifier(t, Config{PublicKeyFile: rsaPEM})
	es := newVerifier(t, Config{PublicKeyFile: pemFile(t, &k.ec.PublicKey)})
	ed := newVerifier(t, Config{PublicKeyFile: pemFile(t, k.ed.Public())})
	issAud := newVerifier(t, Config{Secret: testSecret, Issuer: "https://app.example", Audience: "synckairos"})
	now := time.Now()
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), "")

	cases := []struct {
		name   string
		v      *Verifier
		token  string
		reason string // "" = accepted
	}{
		{"HS256", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(nil), ""), ""},
		{"RS256 PEM", rs, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), ""), ""},
		{"ES256 PEM", es, sign(t, jwt.SigningMethodES256, k.ec, claims(nil), ""), ""},
		{"EdDSA PEM", ed, sign(t, jwt.SigningMethodEdDSA, k.ed, claims(nil), ""), ""},
		{"HS256 and RS256 both configured: RS256", hsAndRS, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), ""), ""},
		{"expired within leeway", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"exp": now.Add(-2 * time.Second).Unix()}), ""), ""},
		{"iss and aud match", issAud, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"iss": "https://app.example", "aud": []string{"other", "synckairos"}}), ""), ""},

		{"empty", hs, "", ReasonMissing},
		{"malformed: one part", hs, "abc", ReasonMalformed},
		{"malformed: three junk parts", hs, "a.b.c", ReasonMalformed},
		{"malformed: Bearer prefix left in", hs, "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, claims(nil), ""), ReasonMalformed},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"exp": now.Add(-time.Minute).Unix()}), ""), ReasonExpired},
		{"no exp", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"exp": nil}), ""), ReasonExpired},
		{"nbf in the future", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()}), ""), ReasonNotYetValid},
		{"iat in the future", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"iat": now.Add(time.Minute).Unix()}), ""), ReasonNotYetValid},
		{"HS256 wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), claims(nil), ""), ReasonSignature},
		{"RS256 wrong key", rs, sign(t, jwt.SigningMethodRS256, k.rsa2, claims(nil), ""), ReasonSignature},
		{"alg none", hs, none, ReasonAlgorithm},
		{"alg none, public key configured", rs, none, ReasonAlgorithm},
		{"HS256 signed with the public key, only RS256 configured", rs, sign(t, jwt.SigningMethodHS256, rsaPEMBytes, claims(nil), ""), ReasonAlgorithm},
		{"HS256 signed with the public key, secret also configured", hsAndRS, sign(t, jwt.SigningMethodHS256, rsaPEMBytes, claims(nil), ""), ReasonSignature},
		{"RS256 to an HS256-only verifier", hs, sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), ""), ReasonAlgorithm},
		{"ES256 to an RS256 key", rs, sign(t, jwt.SigningMethodES256, k.ec, claims(nil), ""), ReasonAlgorithm},
		{"HS384 not pinned", hs, sign(t, jwt.SigningMethodHS384, testSecret, claims(nil), ""), ReasonAlgorithm},
		{"wrong iss", issAud, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"iss": "https://evil.example", "aud": "synckairos"}), ""), ReasonIssuer},
		{"no iss", issAud, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"aud": "synckairos"}), ""), ReasonIssuer},
		{"wrong aud", issAud, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"iss": "https://app.example", "aud": "other"}), ""), ReasonAudience},
		{"unknown role", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"role": "owner"}), ""), ReasonClaims},
		{"sub with a NUL", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sub": "a\x00b"}), ""), ReasonClaims},
		{"sub too long", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sub": strings.Repeat("x", 257)}), ""), ReasonClaims},
		{"no sub", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sub": nil}), ""), ReasonClaims},
		{"player without participant_id", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"role": "player"}), ""), ReasonClaims},
		{"no sessions", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sessions": nil}), ""), ReasonClaims},
		{"sessions not an array", hs, sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"sessions": "*"}), ""), ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.v.Verify(tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.Subject != "user-1" || c.Role != RoleHost || !c.AllSessions {
					t.Fatalf("claims %+v", c)
				}
				return
			}
			var inv *Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("accepted or wrong error type: %v %+v", err, c)
			}
			if inv.Reason != tc.reason {
				t.Fatalf("reason %q, want %q (%v)", inv.Reason, tc.reason, err)
			}
		})
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	t.Parallel()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	_ = os.WriteFile(junk, []byte("not a pem"), 0o600)
	for name, cfg := range map[string]Config{
		"no key":        {},
		"short secret":  {Secret: []byte("short")},
		"RSA 1024":      {PublicKeyFile: pemFile(t, &small.PublicKey)},
		"P-384":         {PublicKeyFile: pemFile(t, &p384.PublicKey)},
		"not PEM":       {PublicKeyFile: junk},
		"missing file":  {PublicKeyFile: filepath.Join(t.TempDir(), "none.pem")},
		"JWKS refusing": {JWKSURL: "http://127.0.0.1:1/jwks.json"},
	} {
		if _, err := New(context.Background(), cfg, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClaimsVerified(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret, Leeway: time.Second})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	c, err := v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{
		"role": "player", "participant_id": "p-1", "sessions": []string{"S-1", "s-2"}, "exp": exp.Unix()}), ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != RolePlayer || c.ParticipantID != "p-1" || c.AllSessions || len(c.Sessions) != 2 || !c.Until.Equal(exp.Add(time.Second)) {
		t.Fatalf("claims %+v", c)
	}
	if !c.Covers("s-1") || !c.Covers("S-2") || c.Covers("s-3") {
		t.Fatal("Covers")
	}
	// admin covers any session whatever its sessions claim says
	c, err = v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"role": "admin", "sessions": nil}), ""))
	if err != nil || !c.AllSessions {
		t.Fatalf("admin: %+v %v", c, err)
	}
	// a participant_id on a non-player token grants nothing
	c, err = v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"participant_id": "p-9"}), ""))
	if err != nil || c.ParticipantID != "" {
		t.Fatalf("host with participant_id: %+v %v", c, err)
	}
}

// TestRoleTable is the table, right by right.
func TestRoleTable(t *testing.T) {
	t.Parallel()
	want := map[Role][]Right{
		RoleAdmin:  {Create, Control, Switch, Read},
		RoleHost:   {Create, Control, Switch, Read},
		RolePlayer: {Switch, Read},
		RoleViewer: {Read},
	}
	for role, rights := range want {
		for _, r := range []Right{Create, Control, Switch, Read} {
			has := false
			for _, g := range rights {
				has = has || g == r
			}
			c := &Claims{Role: role, Sessions: []string{"in"}}
			if got := c.Allows(r); got != has {
				t.Errorf("%s %s: Allows %v, want %v", role, r, got, has)
			}
			err := c.Can(r, "in")
			if has != (err == nil) {
				t.Errorf("%s %s in scope: %v", role, r, err)
			}
			var d *Denied
			if err := c.Can(r, "out"); !errors.As(err, &d) || d.Right != r || has && d.SessionID != "out" {
				t.Errorf("%s %s out of scope: %v", role, r, err)
			}
		}
		if !(&Claims{Role: role}).Allows(Open) {
			t.Errorf("%s: Open refused", role)
		}
	}
}

func TestMint(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret, Issuer: "iss", Audience: "aud"})
	tok, err := Mint(testSecret, Token{Subject: "u", Role: RolePlayer, Sessions: []string{"s"}, ParticipantID: "p",
		TTL: time.Minute, Issuer: "iss", Audience: "aud"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil || c.Subject != "u" || c.Role != RolePlayer || c.ParticipantID != "p" || !c.Covers("s") {
		t.Fatalf("%+v %v", c, err)
	}
	for name, bad := range map[string]Token{
		"player without participant": {Subject: "u", Role: RolePlayer, Sessions: []string{"s"}, TTL: time.Minute},
		"no sessions":                {Subject: "u", Role: RoleHost, TTL: time.Minute},
		"no role":                    {Subject: "u", Sessions: []string{"s"}, TTL: time.Minute},
		"no ttl":                     {Subject: "u", Role: RoleHost, Sessions: []string{"s"}},
		"no subject":                 {Role: RoleHost, Sessions: []string{"s"}, TTL: time.Minute},
	} {
		if _, err := Mint(testSecret, bad, time.Now()); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
	if _, err := Mint([]byte("short"), Token{Subject: "u", Role: RoleHost, Sessions: []string{"*"}, TTL: time.Minute}, time.Now()); err == nil {
		t.Error("short secret: minted")
	}
}

// TestCacheExpiry: a token verified (and cached) before its exp is refused
// after it, and the cache stays bounded.
func TestCacheExpiry(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{Secret: testSecret, Leeway: time.Millisecond})
	tok := sign(t, jwt.SigningMethodHS256, testSecret, claims(map[string]any{"exp": time.Now().Add(time.Second).Unix()}), "")
	c1, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := v.Verify(tok); err != nil || c2 != c1 {
		t.Fatalf("second Verify not served from the cache: %v", err)
	}
	time.Sleep(time.Until(c1.Until) + 10*time.Millisecond)
	if _, err := v.Verify(tok); reasonOf(err) != ReasonExpired {
		t.Fatalf("after exp: %v", err)
	}

	small := &cache{max: 3}
	now := time.Now()
	for i := range 10 {
		small.put(string(rune('a'+i)), &Claims{Until: now.Add(time.Hour)}, now)
		if len(small.m) > 3 {
			t.Fatalf("cache grew to %d", len(small.m))
		}
	}
	if small.get("j", now) == nil || small.get("j", now.Add(2*time.Hour)) != nil {
		t.Fatal("cache get")
	}
}

// BenchmarkVerify is one token verification per algorithm, the cost the
// auth step adds to every request (BenchmarkHTTPSwitchAuth in package
// main sets it against a switch).
//
//	go test -run '^$' -bench Verify -benchmem ./auth/
func BenchmarkVerify(b *testing.B) {
	k := testKeys()
	c := jwt.MapClaims{"sub": "u", "role": "host", "sessions": []string{"3f1c5d9e-0b7a-4c21-9a3e-6d2f8b1e4c70"},
		"iss": "iss", "aud": "aud", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for _, tc := range []struct {
		name string
		cfg  Config
		m    jwt.SigningMethod
		key  any
	}{
		{"HS256", Config{Secret: testSecret}, jwt.SigningMethodHS256, testSecret},
		{"RS256", Config{PublicKeyFile: pemFile(b, &k.rsa.PublicKey)}, jwt.SigningMethodRS256, k.rsa},
		{"ES256", Config{PublicKeyFile: pemFile(b, &k.ec.PublicKey)}, jwt.SigningMethodES256, k.ec},
		{"EdDSA", Config{PublicKeyFile: pemFile(b, k.ed.Public())}, jwt.SigningMethodEdDSA, k.ed},
	} {
		tc.cfg.Issuer, tc.cfg.Audience = "iss", "aud"
		v, err := New(context.Background(), tc.cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := jwt.NewWithClaims(tc.m, c).SignedString(tc.key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
