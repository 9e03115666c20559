package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strconv"
	"time"

	"github.com/synckairos/synckairos/auth"
	"github.com/synckairos/synckairos/envconf"
	"github.com/synckairos/synckairos/handlers"
)

// loadAuthConfig reads the authentication variables:
//
//	AUTH_MODE                 off (default: anyone may do anything) | jwt
//	AUTH_JWT_SECRET           HS256 key (at least 32 bytes)
//	AUTH_JWT_PUBLIC_KEY_FILE  PEM public key: RS256, ES256 or EdDSA
//	AUTH_JWKS_URL             JWKS, fetched at start and on an unknown kid (at most every 30 s)
//	AUTH_JWT_ISSUER           required iss, when set
//	AUTH_JWT_AUDIENCE         required aud, when set
//	AUTH_JWT_LEEWAY           clock skew forgiven on exp, nbf, iat (5s; 0 allowed)
func loadAuthConfig(e *envconf.Reader) auth.Config {
	c := auth.Config{
		Mode:          e.Str("AUTH_MODE", "off"),
		PublicKeyFile: e.Str("AUTH_JWT_PUBLIC_KEY_FILE", ""),
		JWKSURL:       e.Str("AUTH_JWKS_URL", ""),
		Issuer:        e.Str("AUTH_JWT_ISSUER", ""),
		Audience:      e.Str("AUTH_JWT_AUDIENCE", ""),
		Leeway:        5 * time.Second,
	}
	// The secret is taken as given: spaces may be part of it.
	if s := e.Raw("AUTH_JWT_SECRET"); s != "" {
		c.Secret = []byte(s)
	}
	if c.Mode != "off" && c.Mode != "jwt" {
		e.Invalid("AUTH_MODE", "want off or jwt, got "+strconv.Quote(c.Mode))
	}
	if v := e.Str("AUTH_JWT_LEEWAY", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 5*time.Minute {
			e.Invalid("AUTH_JWT_LEEWAY", "want a duration from 0s to 5m, got "+strconv.Quote(v))
		} else {
			c.Leeway = d
		}
	}
	if len(c.Secret) > 0 && len(c.Secret) < auth.MinSecretBytes {
		e.Invalid("AUTH_JWT_SECRET", "want at least 32 bytes")
	}
	if c.Enabled() && len(c.Secret) == 0 && c.PublicKeyFile == "" && c.JWKSURL == "" {
		e.Invalid("AUTH_MODE", "jwt needs AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY_FILE or AUTH_JWKS_URL")
	}
	return c
}

// wireAuth builds the token verifier when AUTH_MODE=jwt (reading the key
// file and fetching the JWKS now, so a bad key stops the start), and
// otherwise warns that the service is open to anyone.
func (a *app) wireAuth(ctx context.Context) error {
	if !a.cfg.Auth.Enabled() {
		a.log.Warn("AUTH_MODE=off: anyone who knows a session id can control it; set AUTH_MODE=jwt in production")
		return nil
	}
	v, err := auth.New(ctx, a.cfg.Auth, a.log.With("component", "auth"))
	if err != nil {
		return err
	}
	a.auth = &handlers.Auth{V: v, Errors: a.errs}
	a.mw.Auth = a.auth
	return nil
}

// mintToken serves `synckairos token --role R --session ID|'*'
// [--participant P] [--sub S] [--ttl 1h]`: it prints an HS256 token signed
// with AUTH_JWT_SECRET, for trying things out and for tests.
func mintToken(args []string, cfg auth.Config, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(out)
	role := fs.String("role", "", "admin, host, player or viewer")
	var sessions []string
	fs.Func("session", "a session id, or '*' for all (repeatable)", func(s string) error {
		sessions = append(sessions, s)
		return nil
	})
	participant := fs.String("participant", "", "the player's participant id (required for --role player)")
	sub := fs.String("sub", "", "the caller's id (default dev-<role>)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("token: unexpected argument " + fs.Arg(0))
	}
	if len(cfg.Secret) == 0 {
		return errors.New("token: AUTH_JWT_SECRET is not set")
	}
	r, ok := auth.ParseRole(*role)
	if !ok {
		return errors.New("token: --role must be admin, host, player or viewer")
	}
	if *sub == "" {
		*sub = "dev-" + r.String()
	}
	tok, err := auth.Mint(cfg.Secret, auth.Token{Subject: *sub, Role: r, Sessions: sessions,
		ParticipantID: *participant, TTL: *ttl, Issuer: cfg.Issuer, Audience: cfg.Audience}, time.Now())
	if err != nil {
		return errors.New("token: " + err.Error())
	}
	_, err = io.WriteString(out, tok+"\n")
	return err
}
