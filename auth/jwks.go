package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	json "github.com/goccy/go-json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// jwks is a JWKS endpoint's keys by kid. Lookups of a known kid take no
// lock; an unknown kid refetches the set, at most once per gap, so a
// stream of made-up kids costs one fetch per gap.
type jwks struct {
	url    string
	client *http.Client
	gap    time.Duration
	log    *slog.Logger

	keys atomic.Pointer[map[string]jwk]
	mu   sync.Mutex // one fetch at a time; guards last
	last time.Time
	// fetched runs after each successful fetch: the Verifier forgets its
	// cached tokens, so a key the set dropped stops verifying at once.
	fetched func()
}

// jwk is one usable key of the set.
type jwk struct {
	alg string
	key crypto.PublicKey
}

// lookup returns the key named kid, refetching the set when kid is
// unknown and the last fetch is at least gap old. A token without kid
// matches a set holding a single key.
func (j *jwks) lookup(kid string) (jwk, bool) {
	if k, ok := j.find(kid); ok {
		return k, true
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if k, ok := j.find(kid); ok { // fetched while we waited
		return k, true
	}
	if time.Since(j.last) < j.gap {
		return jwk{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := j.fetchLocked(ctx); err != nil {
		j.log.Warn("JWKS refetch failed; keeping the previous keys", "url", j.url, "err", err)
		return jwk{}, false
	}
	return j.find(kid)
}

func (j *jwks) find(kid string) (jwk, bool) {
	m := j.keys.Load()
	if m == nil {
		return jwk{}, false
	}
	if kid == "" {
		if len(*m) == 1 {
			for _, k := range *m {
				return k, true
			}
		}
		return jwk{}, false
	}
	k, ok := (*m)[kid]
	return k, ok
}

// refresh fetches the set now (at start).
func (j *jwks) refresh(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetchLocked(ctx)
}

func (j *jwks) fetchLocked(ctx context.Context) error {
	j.last = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := j.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New("HTTP " + strconv.Itoa(res.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	m, err := ParseJWKS(body)
	if err != nil {
		return err
	}
	j.keys.Store(&m)
	if j.fetched != nil {
		j.fetched()
	}
	return nil
}

// ParseJWKS decodes a JWK Set (RFC 7517), keeping the signature keys this
// service accepts (RSA ≥ 2048 bits as RS256, EC P-256 as ES256, OKP
// Ed25519 as EdDSA) by kid. Other keys (encryption keys, other curves) are
// skipped; a set with none usable is an error.
func ParseJWKS(b []byte) (map[string]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			Crv string `json:"crv"`
			N   string `json:"n"`
			E   string `json:"e"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, errors.New("JWKS: " + err.Error())
	}
	out := make(map[string]jwk, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key any
		switch {
		case k.Kty == "RSA":
			n, e := b64int(k.N), b64int(k.E)
			if n == nil || e == nil || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
				continue
			}
			key = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case k.Kty == "EC" && k.Crv == "P-256":
			x, y := b64int(k.X), b64int(k.Y)
			if x == nil || y == nil {
				continue
			}
			// ParseUncompressedPublicKey rejects a point off the curve.
			raw := make([]byte, 65)
			raw[0] = 4
			if len(x.Bytes()) > 32 || len(y.Bytes()) > 32 {
				continue
			}
			x.FillBytes(raw[1:33])
			y.FillBytes(raw[33:])
			pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
			if err != nil {
				continue
			}
			key = pk
		case k.Kty == "OKP" && k.Crv == "Ed25519":
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if err != nil || len(x) != ed25519.PublicKeySize {
				continue
			}
			key = ed25519.PublicKey(x)
		default:
			continue
		}
		pub, alg, err := classify(key)
		if err != nil || k.Alg != "" && k.Alg != alg {
			continue
		}
		out[k.Kid] = jwk{alg: alg, key: pub}
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS: no usable signature key (RS256, ES256 or EdDSA)")
	}
	return out, nil
}

func b64int(s string) *big.Int {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil
	}
	return new(big.Int).SetBytes(b)
}
