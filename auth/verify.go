package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config is AUTH_* (authwire.go in package main reads it).
type Config struct {
	Mode          string // AUTH_MODE: "off" (default) or "jwt"
	Secret        []byte // AUTH_JWT_SECRET: HS256 key, at least 32 bytes
	PublicKeyFile string // AUTH_JWT_PUBLIC_KEY_FILE: PEM public key (RSA, P-256 or Ed25519)
	JWKSURL       string // AUTH_JWKS_URL: fetched at start, refetched on an unknown kid
	Issuer        string // AUTH_JWT_ISSUER: required iss when set
	Audience      string // AUTH_JWT_AUDIENCE: required in aud when set
	// Leeway forgives clock skew between the minting backend and this
	// service on exp, nbf and iat (AUTH_JWT_LEEWAY, 5 s by default).
	Leeway time.Duration
	// JWKSRefetch is the least time between two JWKS fetches (30 s).
	JWKSRefetch time.Duration
	// HTTPClient fetches the JWKS (nil: a client with a 5 s timeout).
	HTTPClient *http.Client
}

// Enabled reports whether tokens are checked.
func (c Config) Enabled() bool { return c.Mode == "jwt" }

// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 3.2:
// a key at least as long as the hash).
const MinSecretBytes = 32

// Verifier checks tokens against the configured keys. It is safe for
// concurrent use.
type Verifier struct {
	secret []byte
	pub    crypto.PublicKey
	pubAlg string
	jwks   *jwks
	leeway time.Duration
	parser *jwt.Parser
	cache  cache
}

// New loads the keys of cfg (reading the PEM file and fetching the JWKS
// once); log receives JWKS refetch failures.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Verifier, error) {
	v := &Verifier{leeway: cfg.Leeway, cache: cache{max: cacheMax}}
	var algs []string
	if len(cfg.Secret) > 0 {
		if len(cfg.Secret) < MinSecretBytes {
			return nil, errors.New("AUTH_JWT_SECRET: want at least 32 bytes")
		}
		v.secret = cfg.Secret
		algs = append(algs, "HS256")
	}
	if cfg.PublicKeyFile != "" {
		pemBytes, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, errors.New("AUTH_JWT_PUBLIC_KEY_FILE: " + err.Error())
		}
		v.pub, v.pubAlg, err = ParsePublicKeyPEM(pemBytes)
		if err != nil {
			return nil, errors.New("AUTH_JWT_PUBLIC_KEY_FILE: " + err.Error())
		}
		algs = append(algs, v.pubAlg)
	}
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 5 * time.Second}
		}
		gap := cfg.JWKSRefetch
		if gap <= 0 {
			gap = 30 * time.Second
		}
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		v.jwks = &jwks{url: cfg.JWKSURL, client: client, gap: gap, log: log, fetched: v.cache.reset}
		if err := v.jwks.refresh(ctx); err != nil {
			return nil, errors.New("AUTH_JWKS_URL: " + err.Error())
		}
		algs = append(algs, "RS256", "ES256", "EdDSA")
	}
	if len(algs) == 0 {
		return nil, errors.New("AUTH_MODE=jwt needs a key: AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_URL")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// tokenClaims is the token's payload as minted (Mint) and verified.
type tokenClaims struct {
	jwt.RegisteredClaims
	Role          string   `json:"role"`
	Sessions      []string `json:"sessions,omitempty"`
	ParticipantID string   `json:"participant_id,omitempty"`
}

// Verify checks token (the compact JWT, without "Bearer ") and returns its
// claims, or an *Invalid saying why it is refused. The claims are shared:
// callers must not change them.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	now := time.Now()
	if c := v.cache.get(token, now); c != nil {
		return c, nil
	}
	c, err := v.verify(token)
	if err == nil {
		v.cache.put(token, c, now)
	}
	return c, err
}

// verify is Verify without the cache.
func (v *Verifier) verify(token string) (*Claims, error) {
	var tc tokenClaims
	if _, err := v.parser.ParseWithClaims(token, &tc, v.key); err != nil {
		return nil, &Invalid{Reason: reason(err), Err: err}
	}
	c := &Claims{Subject: tc.Subject, ParticipantID: tc.ParticipantID, Until: tc.ExpiresAt.Add(v.leeway)}
	var ok bool
	switch c.Role, ok = ParseRole(tc.Role); {
	case !ok:
		return nil, &Invalid{Reason: ReasonClaims, Err: errors.New("role must be admin, host, player or viewer")}
	case c.Subject == "":
		return nil, &Invalid{Reason: ReasonClaims, Err: errors.New("sub is required")}
	case !printableSub(c.Subject):
		// It becomes a Redis key and the audit actor (PostgreSQL text).
		return nil, &Invalid{Reason: ReasonClaims, Err: errors.New("sub must be 1-256 bytes without control characters")}
	case c.Role == RolePlayer && c.ParticipantID == "":
		return nil, &Invalid{Reason: ReasonClaims, Err: errors.New("participant_id is required for role player")}
	}
	if c.Role != RolePlayer {
		c.ParticipantID = ""
	}
	if c.Role == RoleAdmin || len(tc.Sessions) == 1 && tc.Sessions[0] == "*" {
		c.AllSessions = true
	} else if len(tc.Sessions) == 0 {
		return nil, &Invalid{Reason: ReasonClaims, Err: errors.New(`sessions is required: session ids or ["*"]`)}
	} else {
		c.Sessions = tc.Sessions
	}
	return c, nil
}

func printableSub(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// key picks the verification key for t: only one of the configured keys
// whose algorithm is exactly t's, so a key never verifies another
// algorithm's signature.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		if v.secret == nil {
			return nil, errAlg
		}
		return v.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if v.jwks != nil {
		if k, ok := v.jwks.lookup(kid); ok {
			if k.alg != alg {
				return nil, errAlg
			}
			return k.key, nil
		}
	}
	if v.pub != nil && v.pubAlg == alg {
		return v.pub, nil
	}
	if v.pub == nil && v.jwks == nil {
		return nil, errAlg
	}
	return nil, errUnknownKey
}

// reason classifies a parser error for clients and tests.
func reason(err error) string {
	switch {
	case errors.Is(err, errAlg):
		return ReasonAlgorithm
	case errors.Is(err, errUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The parser reports an algorithm outside WithValidMethods as a
		// signature error.
		if strings.Contains(err.Error(), "signing method") {
			return ReasonAlgorithm
		}
		return ReasonSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return ReasonAlgorithm
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// exp is always required; iss and aud when configured.
		switch msg := err.Error(); {
		case strings.Contains(msg, "iss claim"):
			return ReasonIssuer
		case strings.Contains(msg, "aud claim"):
			return ReasonAudience
		}
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonAudience
	}
	return ReasonMalformed
}

// ParsePublicKeyPEM reads a PEM public key (PKIX "PUBLIC KEY", PKCS#1 "RSA
// PUBLIC KEY" or a certificate) and returns it with its JWS algorithm:
// RS256 (RSA of 2048 bits or more), ES256 (P-256) or EdDSA (Ed25519).
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, "", errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, "", errors.New("PEM block " + block.Type + ": want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE")
	}
	if err != nil {
		return nil, "", err
	}
	return classify(key)
}

// classify returns key's algorithm, refusing kinds and sizes not accepted.
func classify(key any) (crypto.PublicKey, string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, "", errors.New("RSA key under 2048 bits")
		}
		return k, "RS256", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", errors.New("EC key not on P-256 (ES256)")
		}
		return k, "ES256", nil
	case ed25519.PublicKey:
		return k, "EdDSA", nil
	}
	return nil, "", errors.New("unsupported key type: want RSA, EC P-256 or Ed25519")
}
