// Package auth verifies the JSON Web Tokens an application's backend mints
// for its users and decides what each may do. SyncKairos keeps no user
// state: a token carries who the caller is (sub), a role, the sessions it
// covers and, for a player, its participant id, so any instance can check
// any token on its own (the model of Centrifugo's connection JWTs and
// Ably's capability tokens).
//
// Keys are pinned: HS256 is accepted only with AUTH_JWT_SECRET, RS256,
// ES256 and EdDSA only with a public key (a PEM file or a JWKS) of that
// kind, so alg "none" and an HS256 token "signed" with a public key fail.
package auth

import (
	"errors"
	"strings"
	"time"
)

// Role is what a token's "role" claim grants.
type Role uint8

// Roles, from most to least powerful.
const (
	RoleAdmin Role = iota + 1
	RoleHost
	RolePlayer
	RoleViewer
)

var roleNames = [...]string{RoleAdmin: "admin", RoleHost: "host", RolePlayer: "player", RoleViewer: "viewer"}

func (r Role) String() string {
	if int(r) < len(roleNames) && r > 0 {
		return roleNames[r]
	}
	return "unknown"
}

// ParseRole maps a claim value to a Role (0, false when unknown).
func ParseRole(s string) (Role, bool) {
	for r, n := range roleNames {
		if n != "" && n == s {
			return Role(r), true
		}
	}
	return 0, false
}

// Right is what a route needs.
type Right uint8

// Rights. Open (the zero value) needs no token: /health, /ready,
// /metrics, /v1/time, /openapi.json and static files.
const (
	Open    Right = iota
	Create        // POST /v1/sessions
	Control       // start, pause, resume, complete, delete
	Switch        // POST /v1/sessions/{id}/switch
	Read          // GET a session, its events, its WebSocket
)

var rightNames = [...]string{Open: "open", Create: "create", Control: "control", Switch: "switch", Read: "read"}

func (r Right) String() string {
	if int(r) < len(rightNames) {
		return rightNames[r]
	}
	return "unknown"
}

// grants is the role table of the issue: admin and host may do anything;
// a player may switch (only its own turn: the caller pins the switch to
// its participant) and read; a viewer may read.
var grants = [...]uint8{
	RoleAdmin:  1<<Create | 1<<Control | 1<<Switch | 1<<Read,
	RoleHost:   1<<Create | 1<<Control | 1<<Switch | 1<<Read,
	RolePlayer: 1<<Switch | 1<<Read,
	RoleViewer: 1 << Read,
}

// Claims is a verified token.
type Claims struct {
	Subject       string
	Role          Role
	AllSessions   bool     // admin, or sessions ["*"]
	Sessions      []string // the sessions covered, when not AllSessions
	ParticipantID string   // a player's participant ("" for other roles)
	// Until is exp plus the leeway: the last instant the token is accepted.
	Until time.Time
}

// Allows reports whether the role grants r, whatever the session.
func (c *Claims) Allows(r Right) bool {
	return r == Open || int(c.Role) < len(grants) && grants[c.Role]&(1<<r) != 0
}

// Covers reports whether the token names session id (UUIDs compare
// case-insensitively).
func (c *Claims) Covers(id string) bool {
	if c.AllSessions {
		return true
	}
	for _, s := range c.Sessions {
		if strings.EqualFold(s, id) {
			return true
		}
	}
	return false
}

// Can is Allows and Covers: nil, or a *Denied saying which is missing.
func (c *Claims) Can(r Right, id string) error {
	if !c.Allows(r) {
		return &Denied{Right: r, Role: c.Role}
	}
	if !c.Covers(id) {
		return &Denied{Right: r, Role: c.Role, SessionID: id}
	}
	return nil
}

// Denied is a valid token without a right (HTTP 403).
type Denied struct {
	Right     Right
	Role      Role
	SessionID string // set when the role has the right but not for this session
}

func (d *Denied) Error() string {
	if d.SessionID != "" {
		return "token does not cover session " + d.SessionID + " (right: " + d.Right.String() + ")"
	}
	return "role " + d.Role.String() + " lacks the right: " + d.Right.String()
}

// Reasons a token is refused (Invalid.Reason), stable for clients.
const (
	ReasonMissing     = "missing"       // no token at all
	ReasonMalformed   = "malformed"     // not a JWT, or undecodable claims
	ReasonAlgorithm   = "algorithm"     // alg not pinned to a configured key
	ReasonUnknownKey  = "unknown_key"   // kid in no configured key set
	ReasonSignature   = "signature"     // signature does not verify
	ReasonExpired     = "expired"       // exp passed (or missing: exp is required)
	ReasonNotYetValid = "not_yet_valid" // nbf or iat in the future
	ReasonIssuer      = "issuer"        // iss is not AUTH_JWT_ISSUER
	ReasonAudience    = "audience"      // aud lacks AUTH_JWT_AUDIENCE
	ReasonClaims      = "claims"        // sub, role, sessions or participant_id missing or wrong
)

// Invalid is a missing or bad token (HTTP 401).
type Invalid struct {
	Reason string
	Err    error
}

func (e *Invalid) Error() string {
	if e.Err == nil {
		return "token " + e.Reason
	}
	return "token " + e.Reason + ": " + e.Err.Error()
}

func (e *Invalid) Unwrap() error { return e.Err }

// ErrMissing is the error for a request without a token.
var ErrMissing = &Invalid{Reason: ReasonMissing}

var (
	errAlg        = errors.New("algorithm not accepted with the configured keys")
	errUnknownKey = errors.New("no configured key matches the token's kid")
)
