// Package wsrelay serves /ws?sessionId=<uuid>: it relays what the scripts
// publish on a session's channels to every WebSocket client of that session
// connected to this instance.
//
// The scripts publish by SPUBLISH, and the relay keeps one sharded Pub/Sub
// connection (SSUBSCRIBE) per shard it watches sessions in, made on the
// node serving the shard's slot: on a Redis Cluster a message then stays
// on that node, and the same code runs on a single Redis. A session's two
// channels (state and message) are subscribed while at least one local
// client watches it. The Pub/Sub readers never block: they hand each
// payload to the worker that owns the session (by hash), and a worker
// sends the same bytes to every client's bounded queue. A client whose
// queue is full is disconnected rather than waited for.
//
// Choices the issue leaves open:
//   - A client may connect to a session that does not exist yet (clients
//     connect before create); it receives updates once the session appears.
//   - SESSION_DELETED is forwarded, then the session's clients are closed
//     with 1000 "session deleted".
//   - Bad or missing sessionId: close 1008; a relay that could not
//     subscribe: close 1013 (try again later); shutdown: 1001.
//   - A client too slow to drain its queue is counted and cut at once: its
//     socket's write deadline moves to now, so a write blocked on the full
//     socket fails and the TCP connection is closed without a close frame
//     (there is no room for one). Only when its writer was not blocked at
//     that moment does it send close 1013 "slow client" first.
//   - Connection caps (total and per IP) are checked before the upgrade: a
//     request over a cap gets HTTP 503 with Retry-After: 1 and is never
//     upgraded. The slot is taken once upgraded and given back when the
//     connection ends (see Handler for why not before Upgrade); of
//     handshakes racing for the last slot, the losers get close 1013.
//     Either way the rejection is counted and holds no slot.
//   - A missed heartbeat (no pong, nor any frame, within one ping interval)
//     drops the TCP connection without a close frame. The pings are spread
//     over the interval: each client has a fixed slot (of 50, round robin
//     at connect) and one slot is pinged every PingInterval/50, so a large
//     instance never pings all its clients in the same instant.
//   - Pub/Sub loses what is published while a connection is down. When
//     go-redis has reconnected it subscribes again (on a Cluster, on the
//     slot's master, a promoted replica after a failover), and a second
//     confirmation for a session's state channel is the signal: every
//     client of that session gets STATE_SYNC with the current state. A
//     worker whose buffer was full does the same for the session whose
//     payload it could not take. A session gone by then, of which this
//     instance had sent a version, was deleted meanwhile: its clients get
//     SESSION_DELETED (timestamp on the Redis clock) and close 1000, as for
//     a live delete. A current version below the one sent means deleted
//     and created again, or a Cluster failover that lost the last
//     switches: it goes out as STATE_SYNC and becomes the session's
//     version. When Redis drops a shard's subscriptions itself (its slot
//     moved to another node), the relay links the shard again there.
//   - A session's worker only moves its version forward (an update older
//     than what it already sent is skipped), and it also answers RECONNECT,
//     so this instance never sends a client an older state after a newer.
//   - A client has at most one RECONNECT outstanding: from the frame until
//     its STATE_SYNC (or ERROR) is written, further RECONNECTs are
//     coalesced into it (answered by that STATE_SYNC, no second read), so a
//     client cannot make the relay read and queue one full state per frame.
//   - Requests without Origin (non-browser clients) are accepted; "*"
//     accepts any Origin.
//   - With Config.Auth (AUTH_MODE=jwt) the ?token= is checked before the
//     caps and the upgrade: HTTP 401 or 403, nothing upgraded. AUTH
//     replaces the token (same sub, still allowed to read the session)
//     and is answered AUTH_OK{expires_at} or ERROR, the old token staying
//     in force on an ERROR; at the held token's expiry (exp plus the
//     leeway) the connection is closed with 4001 "token expired". Without
//     Config.Auth, AUTH is an unknown message type, as before.
//   - Metrics (synckairos_ws_*): clients, sessions_subscribed,
//     messages_delivered_total (session messages, STATE_SYNC from a resync
//     included, written to a client's socket: counted by its writer once
//     the frame is written, so what waits in a queue or is dropped with a
//     slow client is not counted; replies to a client's own PING or
//     RECONNECT are not), clients_dropped_total by reason, rejected_total
//     by reason, dispatch_overflow_total, resyncs_total, and
//     publish_to_send_seconds: from the payload's "timestamp" (Redis clock
//     at publish) to the end of the first client's write of it, once per
//     message.
package wsrelay

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/redisclock"
)

// StateReader reads a session's current full v1 state (*Scripts in package
// main satisfies it). A missing session is an error matching
// session.ErrSessionNotFound.
type StateReader interface {
	Get(ctx context.Context, id string) ([]byte, error)
}

// Config tunes the relay; zero values take the defaults below.
type Config struct {
	Origins       []string // allowed Origin values; "*" allows any; requests without Origin are allowed
	MaxConns      int      // connections per instance; 0 = no cap
	MaxConnsPerIP int      // connections per client IP; 0 = no cap
	TrustProxy    bool     // take the client IP from X-Forwarded-For

	QueueSize        int           // messages queued per client before it counts as slow (256)
	Workers          int           // fan-out workers (2 x GOMAXPROCS)
	WorkerQueue      int           // payloads buffered per worker before a session is resynced instead (4096)
	PingInterval     time.Duration // protocol ping period; a client silent for one period is dropped (5s)
	WriteTimeout     time.Duration // deadline of each frame write (10s)
	MaxMessageBytes  int64         // largest client frame (4096)
	SubscribeTimeout time.Duration // wait for Redis to confirm a new session's subscription (10s)
	RedisTimeout     time.Duration // state reads for STATE_SYNC (5s)

	// Auth checks tokens with AUTH_MODE=jwt (nil: none needed).
	Auth Authorizer
}

// Authorizer checks WebSocket tokens (handlers.Auth in main). The token
// comes as ?token= (browsers cannot set headers on a WebSocket) and is
// checked before the upgrade; a client replaces it with an AUTH message
// before it expires, and is closed with 4001 "token expired" when it does.
type Authorizer interface {
	// Handshake checks token for reading session id; when refused it has
	// answered ctx (HTTP 401 or 403) and ok is false.
	Handshake(ctx *fasthttp.RequestCtx, token, id string) (sub string, until time.Time, ok bool)
	// Refresh checks an AUTH message's token for the same sub and session:
	// its expiry, or the ERROR code and message to send.
	Refresh(token, id, sub string) (until time.Time, code, msg string)
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.QueueSize, 256)
	def(&c.Workers, 2*runtime.GOMAXPROCS(0))
	def(&c.WorkerQueue, 4096)
	defd(&c.PingInterval, 5*time.Second)
	defd(&c.WriteTimeout, 10*time.Second)
	defd(&c.SubscribeTimeout, 10*time.Second)
	defd(&c.RedisTimeout, 5*time.Second)
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 4096
	}
}

// Relay is the WebSocket relay of one instance.
type Relay struct {
	cfg    Config
	rdb    redis.UniversalClient
	states StateReader
	asm    *fullstate.Assembler
	clock  redisclock.Source
	log    *slog.Logger
	m      *relayMetrics
	up     websocket.FastHTTPUpgrader
	hub    *hub
	adm    admission

	mu      sync.Mutex
	closing bool
	nextSeq uint64
	nConns  int
	slots   []map[*client]struct{} // clients by heartbeat slot (client.slot)
	drained chan struct{}          // closed when closing and no client is left
}

// New starts a relay: its Pub/Sub reader, workers and subscriber run until
// Shutdown. asm is the instance's large-session cache (Scripts.Assembler).
func New(cfg Config, rdb redis.UniversalClient, states StateReader, asm *fullstate.Assembler,
	clock redisclock.Source, logger *slog.Logger, set *metrics.Set) *Relay {
	cfg.defaults()
	r := &Relay{
		cfg: cfg, rdb: rdb, states: states, asm: asm, clock: clock, log: logger,
		slots:   makeSlots(cfg.PingInterval),
		drained: make(chan struct{}),
		adm:     admission{max: cfg.MaxConns, maxPerIP: cfg.MaxConnsPerIP, perIP: make(map[string]int)},
	}
	r.up = websocket.FastHTTPUpgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		CheckOrigin:     originChecker(cfg.Origins),
		Error:           r.upgradeError,
	}
	r.m = newRelayMetrics(set, r)
	r.hub = newHub(r)
	r.hub.start(func() { r.heartbeat(r.hub.done) })
	return r
}

// nowMS is the Redis clock in the ms the relay's messages carry.
func (r *Relay) nowMS() int64 { return r.clock.Now() / 1000 }

// BroadcastToSession publishes message (one JSON object, forwarded as is)
// on the session's message channel, so the clients of every instance get it.
func (r *Relay) BroadcastToSession(ctx context.Context, sessionID string, message []byte) error {
	return r.rdb.SPublish(ctx, keyspace.For(sessionID).MsgChannel, message).Err()
}

// Shutdown refuses new connections, sends every client close 1001 and waits
// until they are gone (or ctx ends), then stops the Pub/Sub reader. A
// client whose socket is full gets a second to take the pending write (and
// then the close frame), after which its connection is cut.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if !r.closing {
		r.closing = true
		if r.nConns == 0 {
			close(r.drained)
		}
	}
	cs := make([]*client, 0, r.nConns)
	for _, slot := range r.slots {
		for c := range slot {
			cs = append(cs, c)
		}
	}
	r.mu.Unlock()
	for _, c := range cs {
		c.stop(websocket.CloseGoingAway, "server shutting down")
		// A writer blocked on a full socket (a client that does not read)
		// would otherwise wait out WriteTimeout: give it a second.
		c.cutWrites(time.Now().Add(time.Second))
	}
	var err error
	select {
	case <-r.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.hub.close()
	return err
}

// register adds c to the clients Shutdown closes and gives it its
// heartbeat slot, round robin; false once shutting down.
func (r *Relay) register(c *client) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	c.slot = int(r.nextSeq % uint64(len(r.slots)))
	r.nextSeq++
	r.slots[c.slot][c] = struct{}{}
	r.nConns++
	return true
}

func (r *Relay) unregister(c *client) {
	r.mu.Lock()
	if _, ok := r.slots[c.slot][c]; ok {
		delete(r.slots[c.slot], c)
		r.nConns--
	}
	if r.closing && r.nConns == 0 {
		select {
		case <-r.drained:
		default:
			close(r.drained)
		}
	}
	r.mu.Unlock()
}

// clientCount is the number of open connections (for the gauge).
func (r *Relay) clientCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nConns
}

// relayMetrics are the relay's series, registered in the caller's set.
type relayMetrics struct {
	delivered     *metrics.Counter
	slow          *metrics.Counter
	heartbeat     *metrics.Counter
	writeErrors   *metrics.Counter
	rejectID      *metrics.Counter
	rejectLimit   *metrics.Counter
	rejectOrigin  *metrics.Counter
	rejectSub     *metrics.Counter
	rejectAuth    *metrics.Counter
	tokenExpired  *metrics.Counter
	overflow      *metrics.Counter
	resyncs       *metrics.Counter
	resyncErrors  *metrics.Counter
	publishToSend *metrics.Histogram
}

func newRelayMetrics(set *metrics.Set, r *Relay) *relayMetrics {
	set.NewGauge(`synckairos_ws_clients`, func() float64 { return float64(r.clientCount()) })
	set.NewGauge(`synckairos_ws_sessions_subscribed`, func() float64 { return float64(r.hub.sessionCount()) })
	return &relayMetrics{
		delivered:     set.NewCounter(`synckairos_ws_messages_delivered_total`),
		slow:          set.NewCounter(`synckairos_ws_clients_dropped_total{reason="slow"}`),
		heartbeat:     set.NewCounter(`synckairos_ws_clients_dropped_total{reason="heartbeat"}`),
		writeErrors:   set.NewCounter(`synckairos_ws_clients_dropped_total{reason="write_error"}`),
		rejectID:      set.NewCounter(`synckairos_ws_rejected_total{reason="session_id"}`),
		rejectLimit:   set.NewCounter(`synckairos_ws_rejected_total{reason="limit"}`),
		rejectOrigin:  set.NewCounter(`synckairos_ws_rejected_total{reason="origin"}`),
		rejectSub:     set.NewCounter(`synckairos_ws_rejected_total{reason="subscribe"}`),
		rejectAuth:    set.NewCounter(`synckairos_ws_rejected_total{reason="auth"}`),
		tokenExpired:  set.NewCounter(`synckairos_ws_clients_dropped_total{reason="token_expired"}`),
		overflow:      set.NewCounter(`synckairos_ws_dispatch_overflow_total`),
		resyncs:       set.NewCounter(`synckairos_ws_resyncs_total`),
		resyncErrors:  set.NewCounter(`synckairos_ws_resync_errors_total`),
		publishToSend: set.NewHistogram(`synckairos_ws_publish_to_send_seconds`),
	}
}
