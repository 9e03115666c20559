package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token is what Mint puts in a token.
type Token struct {
	Subject       string
	Role          Role
	Sessions      []string // session ids, or ["*"]
	ParticipantID string   // required for RolePlayer
	TTL           time.Duration
	Issuer        string // "" omits iss
	Audience      string // "" omits aud
}

// Mint signs t with secret (HS256), issued now: the dev tokens of
// `synckairos token`, and the tests'. Production tokens come from the
// application's own backend.
func Mint(secret []byte, t Token, now time.Time) (string, error) {
	switch {
	case len(secret) < MinSecretBytes:
		return "", errors.New("AUTH_JWT_SECRET: want at least 32 bytes")
	case t.Role.String() == "unknown":
		return "", errors.New("role: want admin, host, player or viewer")
	case t.Role == RolePlayer && t.ParticipantID == "":
		return "", errors.New("a player token needs a participant id")
	case t.Role != RoleAdmin && len(t.Sessions) == 0:
		return "", errors.New(`sessions: give session ids or "*"`)
	case t.TTL <= 0:
		return "", errors.New("ttl must be positive")
	case t.Subject == "":
		return "", errors.New("subject is required")
	}
	c := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   t.Subject,
			Issuer:    t.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.TTL)),
		},
		Role:          t.Role.String(),
		Sessions:      t.Sessions,
		ParticipantID: t.ParticipantID,
	}
	if t.Audience != "" {
		c.Audience = jwt.ClaimStrings{t.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
