// Package keyspace maps a session id to its Redis keys and channels.
//
// Every key and channel of a session shares one hash tag, {<shard>}, so
// that each script touches one Redis Cluster slot: keys look like
// sk:{a}:session:<id>. The shard (the "a") is the last hex
// digit of the session id (lowercased), which gives 16 shards; shared
// structures such as the audit stream exist once per shard. lua/README.md
// states the same rule for clients in other languages.
package keyspace

import "strings"

// Shards is the number of shards; the shard of a session is its id's last hex digit.
const Shards = 16

const hexDigits = "0123456789abcdef"

// Session holds the keys and channels of one session.
type Session struct {
	Meta, Parts, Index string // keys
	Stream             string // the shard's audit stream
	Lives              string // the shard's life counter (Lives)
	StateChannel       string // STATE_UPDATE / SESSION_DELETED published by the scripts
	MsgChannel         string // other session-wide messages (broadcastToSession)
}

// Tag returns the hash tag of a shard, such as "{a}".
func Tag(shard int) string { return "{" + hexDigits[shard:shard+1] + "}" }

// ShardOf returns the shard of a session id.
func ShardOf(id string) int {
	if id == "" {
		return 0
	}
	i := strings.IndexByte(hexDigits, lower(id[len(id)-1]))
	if i < 0 {
		return 0
	}
	return i
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// For returns the keys and channels of session id.
func For(id string) Session {
	tag := Tag(ShardOf(id))
	s := "sk:" + tag + ":session:" + id
	return Session{
		Meta:         s,
		Parts:        s + ":parts",
		Index:        s + ":index",
		Stream:       Stream(ShardOf(id)),
		Lives:        Lives(ShardOf(id)),
		StateChannel: s + ":state",
		MsgChannel:   s + ":msg",
	}
}

// Stream returns the audit stream key of a shard.
func Stream(shard int) string { return "sk:" + Tag(shard) + ":events" }

// Deadlines returns a shard's deadline index: a sorted set of the shard's
// session ids scored by the ms (Redis clock) their running turn runs out.
func Deadlines(shard int) string { return "sk:" + Tag(shard) + ":deadlines" }

// Lives returns a shard's life counter: createSession INCRs it to stamp
// each new session with its life, so an id reused after a delete or a TTL
// is a different life (lua/README.md "Lives"). It never expires.
func Lives(shard int) string { return "sk:" + Tag(shard) + ":lives" }

// Streams returns every shard's audit stream key.
func Streams() []string {
	out := make([]string, Shards)
	for i := range out {
		out[i] = Stream(i)
	}
	return out
}

// Idem returns the key of the session's Idempotency-Key record for key
// (lua/README.md "Idempotency"): in the session's slot, so the scripts
// check and keep it atomically with the transition.
func (s Session) Idem(key string) string { return s.Meta + ":idem:" + key }

// Budget returns the key of the session's switch budget (switchCycle-7's
// GCRA state): in the session's slot, so the switch charges it itself.
func (s Session) Budget() string { return s.Meta + ":rl" }

// Audit is the deployment's audit flag: the audit stream cap that every
// instance with DATABASE_URL keeps there (no TTL), and that instances
// without one pass to the scripts, so that whether a transition is
// recorded does not depend on which instance served it (README.md
// "Several instances: the audit rule"). It is one key of its own slot,
// read by no script.
const Audit = "sk:audit"
