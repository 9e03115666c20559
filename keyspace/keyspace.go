// Package keyspace maps a session id to its Redis keys and channels.
//
// Every key and channel of a session shares one hash tag, {<shard>}, so
// that each script touches one Redis Cluster slot: keys look like
// sk:{3a}:session:<id>. The shard (the "3a") is the value of the session
// id's last two hex digits modulo Shards, as two lower-case hex digits;
// shared structures such as the audit stream and the deadline index exist
// once per shard. lua/README.md states the same rule for clients in other
// languages, and docs/ARCHITECTURE.md "Shards" how the count was chosen.
package keyspace

import "strings"

// Shards is the number of shards, a deployment constant: every instance
// and every caller sharing a Redis must agree on it (the service records it
// in the key ShardsKey and refuses to start on a different one). 64 is the
// most masters that can share the load and lets three masters carry
// 23/21/20 shards; each shard costs every instance one ZRANGEBYSCORE per
// expiry poll and one stream read per persist round.
const Shards = 64

const hexDigits = "0123456789abcdef"

// ShardsKey records the deployment's shard count (Shards, decimal); no TTL.
const ShardsKey = "sk:shards"

// Session holds the keys and channels of one session.
type Session struct {
	Meta, Parts, Index string // keys
	Stream             string // the shard's audit stream
	Lives              string // the shard's life counter (Lives)
	StateChannel       string // STATE_UPDATE / SESSION_DELETED published by the scripts
	MsgChannel         string // other session-wide messages (broadcastToSession)
}

// Tag returns the hash tag of a shard, such as "{3a}".
func Tag(shard int) string {
	return "{" + hexDigits[shard>>4:shard>>4+1] + hexDigits[shard&15:shard&15+1] + "}"
}

// ShardOf returns the shard of a session id: its last two hex digits
// modulo Shards; 0 for an id that does not end in two hex digits.
func ShardOf(id string) int {
	if len(id) < 2 {
		return 0
	}
	hi := strings.IndexByte(hexDigits, lower(id[len(id)-2]))
	lo := strings.IndexByte(hexDigits, lower(id[len(id)-1]))
	if hi < 0 || lo < 0 {
		return 0
	}
	return (hi<<4 | lo) % Shards
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

// Budget returns the key of the session's switch budget (switchCycle5-8's
// GCRA state): in the session's slot, so the switch charges it itself.
func (s Session) Budget() string { return s.Meta + ":rl" }

// Audit is the deployment's audit flag: the audit stream cap that every
// instance with DATABASE_URL keeps there (no TTL), and that instances
// without one pass to the scripts, so that whether a transition is
// recorded does not depend on which instance served it (README.md
// "Several instances: the audit rule"). It is one key of its own slot,
// read by no script.
const Audit = "sk:audit"
