package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/golang-jwt/jwt/v5"
)

// jwksServer serves whatever set it holds and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]string
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		b, _ := json.Marshal(map[string]any{"keys": s.keys})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]string) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	raw, _ := k.Bytes() // 0x04 || X || Y
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]string {
	return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
}

func reasonOf(err error) string {
	var inv *Invalid
	if errors.As(err, &inv) {
		return inv.Reason
	}
	if err == nil {
		return ""
	}
	return "not *Invalid: " + err.Error()
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("rsa-1", &k.rsa.PublicKey), ecJWK("ec-1", &k.ec.PublicKey),
		edJWK("ed-1", k.ed.Public().(ed25519.PublicKey)),
		map[string]string{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}, // skipped
		map[string]string{"kty": "oct", "kid": "sym", "k": b64(testSecret)})                   // skipped
	v := newVerifier(t, Config{JWKSURL: srv.URL, JWKSRefetch: time.Hour})
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches at start: %d", n)
	}
	cases := []struct {
		name   string
		token  string
		reason string
	}{
		{"RS256 by kid", sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), "rsa-1"), ""},
		{"ES256 by kid", sign(t, jwt.SigningMethodES256, k.ec, claims(nil), "ec-1"), ""},
		{"EdDSA by kid", sign(t, jwt.SigningMethodEdDSA, k.ed, claims(nil), "ed-1"), ""},
		{"RS256 with the EC key's kid", sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), "ec-1"), ReasonAlgorithm},
		{"wrong RSA key under a known kid", sign(t, jwt.SigningMethodRS256, k.rsa2, claims(nil), "rsa-1"), ReasonSignature},
		{"no kid, several keys", sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), ""), ReasonUnknownKey},
		{"HS256 signed with the JWKS's oct key", sign(t, jwt.SigningMethodHS256, testSecret, claims(nil), "sym"), ReasonAlgorithm},
		{"encryption key kid", sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), "enc"), ReasonUnknownKey},
	}
	for _, tc := range cases {
		if _, err := v.Verify(tc.token); reasonOf(err) != tc.reason {
			t.Errorf("%s: %q, want %q (%v)", tc.name, reasonOf(err), tc.reason, err)
		}
	}
	// None of those refetched: the only unknown kids came within the gap.
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches: %d, want 1", n)
	}
}

// TestJWKSRotation: the issuer rotates to a new key; a token naming the new
// kid refetches the set once, and the retired key stops verifying. Unknown
// kids inside the refetch gap never reach the endpoint.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("2026-a", &k.rsa.PublicKey))
	v := newVerifier(t, Config{JWKSURL: srv.URL, JWKSRefetch: time.Hour})
	old := sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil), "2026-a")
	fresh := sign(t, jwt.SigningMethodRS256, k.rsa2, claims(nil), "2026-b")
	if _, err := v.Verify(old); err != nil {
		t.Fatal(err)
	}

	srv.set(rsaJWK("2026-b", &k.rsa2.PublicKey))
	// Within the gap the new kid is unknown and nothing is fetched.
	for range 20 {
		if _, err := v.Verify(fresh); reasonOf(err) != ReasonUnknownKey {
			t.Fatalf("within the gap: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches within the gap: %d, want 1", n)
	}

	v.jwks.mu.Lock()
	v.jwks.last = time.Now().Add(-time.Hour) // the gap has passed
	v.jwks.mu.Unlock()
	// Concurrent tokens with the new kid share one refetch.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := v.Verify(fresh); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("after rotation: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches after rotation: %d, want 2", n)
	}
	if _, err := v.Verify(old); reasonOf(err) != ReasonUnknownKey {
		t.Fatalf("retired key: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("the retired kid refetched within the gap: %d fetches", n)
	}

	// A failed refetch keeps the keys it had.
	srv.Close()
	v.jwks.mu.Lock()
	v.jwks.last = time.Now().Add(-time.Hour)
	v.jwks.mu.Unlock()
	if _, err := v.Verify(old); reasonOf(err) != ReasonUnknownKey {
		t.Fatalf("endpoint down, unknown kid: %v", err)
	}
	if _, err := v.Verify(fresh); err != nil {
		t.Fatalf("endpoint down, known kid: %v", err)
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	k := testKeys()
	good := rsaJWK("a", &k.rsa.PublicKey)
	for name, tc := range map[string]struct {
		body string
		ok   bool
	}{
		"one RSA key":        {`{"keys":[` + mustJSON(good) + `]}`, true},
		"not JSON":           {`nope`, false},
		"no keys":            {`{"keys":[]}`, false},
		"EC point off curve": {`{"keys":[{"kty":"EC","kid":"x","crv":"P-256","x":"` + b64(make([]byte, 32)) + `","y":"` + b64([]byte{1}) + `"}]}`, false},
		"alg disagrees":      {`{"keys":[` + mustJSON(map[string]string{"kty": "RSA", "kid": "a", "alg": "ES256", "n": good["n"], "e": good["e"]}) + `]}`, false},
		"Ed25519 wrong size": {`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"AAAA"}]}`, false},
	} {
		_, err := ParseJWKS([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
