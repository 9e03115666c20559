package wsrelay

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// hub owns the instance's sharded Pub/Sub connections and the sessions
// watched here.
type hub struct {
	r    *Relay
	seed maphash.Seed

	mu       sync.RWMutex
	sessions map[string]*sess // by session id
	channels map[string]*sess // by channel name (state and message)
	dirty    map[*sess]struct{}
	resync   map[*sess]struct{}
	relinks  map[int]struct{} // shards whose link lost its subscriptions

	// links are the open shard links, by shard. Only the subscriber
	// changes the map; linkMu lets close() take what is left.
	linkMu sync.Mutex
	links  map[int]*link
	subEnd chan struct{} // closed when the subscriber has returned

	subWake    chan struct{} // the subscriber has dirty sessions to reconcile
	resyncWake chan struct{}
	workers    []chan job
	done       chan struct{}
	closeOnce  sync.Once
	wg         sync.WaitGroup
}

// sess is one session watched by local clients. refs and subscribed are
// guarded by hub.mu; last belongs to the session's worker.
type sess struct {
	id, stateCh, msgCh string
	worker             chan job

	refs       int
	subscribed bool
	stateOK    bool
	msgOK      bool
	ready      chan struct{} // closed once Redis confirmed both channels
	clients    atomic.Pointer[[]*client]

	last stamp // of the newest state sent; zero: none
}

// link is one shard's sharded Pub/Sub connection. A Cluster refuses an
// SSUBSCRIBE whose channels are in different slots, and a shard is one
// slot, so each shard with watched sessions has a connection of its own,
// made on the node that serves the slot (go-redis picks it from the
// channels, again on every reconnect). The same holds on a single Redis:
// one code path. n counts its channels; the subscriber closes a link that
// has none, so a link never reconnects without channels to a random node.
type link struct {
	shard     int
	ps        *redis.PubSub
	n         int
	confirmed atomic.Bool // Redis confirmed one of its subscriptions
	lost      atomic.Bool // Redis dropped its subscriptions: being replaced
}

type jobKind uint8

const (
	jobState jobKind = iota
	jobMsg
	jobResync
	jobSyncClient
)

type job struct {
	s       *sess
	kind    jobKind
	payload []byte
	c       *client
}

func newHub(r *Relay) *hub {
	h := &hub{
		r:          r,
		seed:       maphash.MakeSeed(),
		sessions:   make(map[string]*sess),
		channels:   make(map[string]*sess),
		dirty:      make(map[*sess]struct{}),
		resync:     make(map[*sess]struct{}),
		relinks:    make(map[int]struct{}),
		links:      make(map[int]*link),
		subEnd:     make(chan struct{}),
		subWake:    make(chan struct{}, 1),
		resyncWake: make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	h.workers = make([]chan job, r.cfg.Workers)
	for i := range h.workers {
		h.workers[i] = make(chan job, r.cfg.WorkerQueue)
		h.start(func() { h.work(h.workers[i]) })
	}
	h.start(func() { defer close(h.subEnd); h.subscriber() })
	h.start(h.resyncer)
	return h
}

func (h *hub) start(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

func (h *hub) close() {
	h.closeOnce.Do(func() {
		close(h.done)
		<-h.subEnd // no link is opened after this
		h.linkMu.Lock()
		for _, l := range h.links {
			_ = l.ps.Close() // ends its reader
		}
		h.linkMu.Unlock()
		h.wg.Wait()
	})
}

func (h *hub) sessionCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// join adds c to session id, creating (and scheduling the subscription of)
// the session on its first local client.
func (h *hub) join(id string, c *client) *sess {
	h.mu.Lock()
	s := h.sessions[id]
	if s == nil {
		k := keyspace.For(id)
		s = &sess{id: id, stateCh: k.StateChannel, msgCh: k.MsgChannel, ready: make(chan struct{}),
			worker: h.workers[maphash.String(h.seed, id)%uint64(len(h.workers))]}
		s.clients.Store(&[]*client{})
		h.sessions[id] = s
		h.channels[s.stateCh] = s
		h.channels[s.msgCh] = s
	}
	s.refs++
	old := *s.clients.Load()
	cs := make([]*client, len(old), len(old)+1)
	copy(cs, old)
	h.setClients(s, append(cs, c), s.refs == 1)
	h.mu.Unlock()
	return s
}

// leave removes c; the subscriber drops the session once no client is left.
func (h *hub) leave(s *sess, c *client) {
	h.mu.Lock()
	s.refs--
	old := *s.clients.Load()
	cs := make([]*client, 0, len(old))
	for _, o := range old {
		if o != c {
			cs = append(cs, o)
		}
	}
	h.setClients(s, cs, s.refs == 0)
	h.mu.Unlock()
}

// setClients publishes cs as s's clients (a new slice each time: the
// fan-out reads the list without h.mu) and, when s just gained its first
// client or lost its last (edge), has the subscriber (un)subscribe it.
// h.mu is held.
func (h *hub) setClients(s *sess, cs []*client, edge bool) {
	s.clients.Store(&cs)
	if edge {
		h.dirty[s] = struct{}{}
		wake(h.subWake)
	}
}

// subscriber reconciles Redis subscriptions with the sessions that have
// clients. It is the only goroutine that subscribes, unsubscribes or opens
// and closes links, so commands reach Redis in the order the decisions were
// made, and it batches whatever accumulated while it was busy. A session
// whose last client leaves and another joins before this runs keeps its
// subscription.
func (h *hub) subscriber() {
	ctx := context.Background()
	for {
		select {
		case <-h.subWake:
		case <-h.done:
			return
		}
		sub, unsub := map[int][]string{}, map[int][]string{}
		h.mu.Lock()
		for s := range h.dirty {
			shard := keyspace.ShardOf(s.id)
			switch {
			case s.refs == 0:
				if h.sessions[s.id] == s {
					delete(h.sessions, s.id)
					delete(h.channels, s.stateCh)
					delete(h.channels, s.msgCh)
				}
				if s.subscribed {
					s.subscribed = false
					unsub[shard] = append(unsub[shard], s.stateCh, s.msgCh)
				}
			case !s.subscribed:
				s.subscribed = true
				sub[shard] = append(sub[shard], s.stateCh, s.msgCh)
			}
		}
		clear(h.dirty)
		// A shard linked again gets every channel subscribed now, this
		// round's changes included.
		relink := map[int][]string{}
		for shard := range h.relinks {
			relink[shard] = nil
			delete(sub, shard)
			delete(unsub, shard)
		}
		clear(h.relinks)
		if len(relink) > 0 {
			for _, s := range h.sessions {
				shard := keyspace.ShardOf(s.id)
				if _, ok := relink[shard]; ok && s.subscribed {
					relink[shard] = append(relink[shard], s.stateCh, s.msgCh)
				}
			}
		}
		h.mu.Unlock()
		for shard, chans := range relink {
			h.relink(ctx, shard, chans)
		}
		// On a write error go-redis keeps the channels and subscribes them
		// again when it reconnects; the confirmation then arrives as usual.
		for shard, chans := range unsub {
			l := h.links[shard]
			if l == nil {
				continue
			}
			if l.n -= len(chans); l.n <= 0 {
				h.closeLink(l)
			} else if err := l.ps.SUnsubscribe(ctx, chans...); err != nil {
				h.r.log.Warn("wsrelay: unsubscribe", "shard", shard, "err", err)
			}
		}
		for shard, chans := range sub {
			if l := h.links[shard]; l != nil {
				l.n += len(chans)
				if err := l.ps.SSubscribe(ctx, chans...); err != nil {
					h.r.log.Warn("wsrelay: subscribe", "shard", shard, "err", err)
				}
				continue
			}
			h.openLink(ctx, shard, chans)
		}
	}
}

// openLink opens shard's link subscribed to chans. Its connection is made
// by this first SSUBSCRIBE, on the node serving the shard's slot.
func (h *hub) openLink(ctx context.Context, shard int, chans []string) *link {
	l := &link{shard: shard, ps: h.r.rdb.SSubscribe(ctx, chans...), n: len(chans)}
	// The channel also yields subscription confirmations: they tell when a
	// session is live and when go-redis has resubscribed after a reconnect.
	msgs := l.ps.ChannelWithSubscriptions(redis.WithChannelSize(h.r.cfg.WorkerQueue))
	h.linkMu.Lock()
	h.links[shard] = l
	h.linkMu.Unlock()
	h.start(func() { h.read(l, msgs) })
	return l
}

func (h *hub) closeLink(l *link) {
	h.linkMu.Lock()
	if h.links[l.shard] == l {
		delete(h.links, l.shard)
	}
	h.linkMu.Unlock()
	_ = l.ps.Close()
}

// relink replaces shard's link with a new one subscribed to chans (every
// channel of the shard's watched sessions): Redis dropped the old link's
// subscriptions because the slot moved to another node. The new link's
// confirmations resync the sessions, as after a reconnect. A client that
// still had the old owner in its slot map makes the new link on the old
// node, which answers MOVED and confirms nothing: a link unconfirmed after
// relinkCheck is made again.
func (h *hub) relink(ctx context.Context, shard int, chans []string) {
	if l := h.links[shard]; l != nil {
		h.closeLink(l)
	}
	if len(chans) == 0 {
		return
	}
	l := h.openLink(ctx, shard, chans)
	time.AfterFunc(relinkCheck, func() {
		h.linkMu.Lock()
		stale := h.links[shard] == l && !l.confirmed.Load()
		h.linkMu.Unlock()
		if stale {
			h.requestRelink(shard)
		}
	})
}

// relinkCheck is how long a new link of a moved slot has to be confirmed.
const relinkCheck = time.Second

// requestRelink has the subscriber link shard again, once the client has
// reloaded its slot map: at once on a single Redis, after relinkDelay on a
// Cluster client (its reload runs in the background).
func (h *hub) requestRelink(shard int) {
	delay := time.Duration(0)
	if c, ok := h.r.rdb.(interface{ ReloadState(context.Context) }); ok {
		c.ReloadState(context.Background())
		delay = relinkDelay
	}
	time.AfterFunc(delay, func() {
		select {
		case <-h.done:
			return
		default:
		}
		h.mu.Lock()
		h.relinks[shard] = struct{}{}
		h.mu.Unlock()
		wake(h.subWake)
	})
}

const relinkDelay = 200 * time.Millisecond

// read is a link's Pub/Sub reader. It never blocks: payloads go to the
// session's worker if its buffer has room, and otherwise the session is
// marked for a resync from current state.
func (h *hub) read(l *link, msgs <-chan any) {
	for {
		var v any
		var ok bool
		select {
		case v, ok = <-msgs:
			if !ok {
				return
			}
		case <-h.done:
			return
		}
		switch m := v.(type) {
		case *redis.Message:
			h.mu.RLock()
			s := h.channels[m.Channel]
			h.mu.RUnlock()
			if s == nil {
				continue
			}
			kind := jobMsg
			if m.Channel == s.stateCh {
				kind = jobState
			}
			select {
			case s.worker <- job{s: s, kind: kind, payload: []byte(m.Payload)}:
			default:
				h.r.m.overflow.Inc()
				h.requestResync(s)
			}
		case *redis.Subscription:
			// The classic kinds come from the embedded dev Redis, which
			// runs the sharded commands as the classic ones.
			switch m.Kind {
			case "ssubscribe", "subscribe":
				l.confirmed.Store(true)
				h.confirmed(m.Channel)
			case "sunsubscribe", "unsubscribe":
				h.unsubscribed(l, m.Channel)
			}
		}
	}
}

// unsubscribed handles an sunsubscribe of l. Either this instance asked for
// it (the session is gone or no longer subscribed), or Redis dropped the
// subscription itself because the channel's slot left the node, in which
// case the shard is linked again on the slot's new node.
func (h *hub) unsubscribed(l *link, channel string) {
	h.mu.RLock()
	s := h.channels[channel]
	lost := s != nil && s.subscribed && keyspace.ShardOf(s.id) == l.shard
	h.mu.RUnlock()
	if lost && l.lost.CompareAndSwap(false, true) { // once per link, not per channel
		h.r.log.Warn("wsrelay: Redis dropped the shard's subscriptions (its slot moved): linking it again", "shard", l.shard)
		h.requestRelink(l.shard)
	}
}

// confirmed handles a subscribe confirmation. The first one for a session
// channel makes the session ready; any later one means go-redis has
// resubscribed after a lost connection, during which publishes were
// dropped, so the session's clients are resynced.
func (h *hub) confirmed(channel string) {
	h.mu.Lock()
	s := h.channels[channel]
	if s == nil {
		h.mu.Unlock()
		return
	}
	isState := channel == s.stateCh
	again := isState && s.stateOK
	if isState {
		s.stateOK = true
	} else {
		s.msgOK = true
	}
	if s.stateOK && s.msgOK {
		select {
		case <-s.ready:
		default:
			close(s.ready)
		}
	}
	h.mu.Unlock()
	if again {
		h.requestResync(s)
	}
}

func (h *hub) requestResync(s *sess) {
	h.mu.Lock()
	h.resync[s] = struct{}{}
	h.mu.Unlock()
	wake(h.resyncWake)
}

// resyncer hands resync jobs to the workers; unlike the reader it may wait
// for room in a worker's buffer.
func (h *hub) resyncer() {
	for {
		select {
		case <-h.resyncWake:
		case <-h.done:
			return
		}
		h.mu.Lock()
		batch := make([]*sess, 0, len(h.resync))
		for s := range h.resync {
			batch = append(batch, s)
		}
		clear(h.resync)
		h.mu.Unlock()
		for _, s := range batch {
			select {
			case s.worker <- job{s: s, kind: jobResync}:
			case <-h.done:
				return
			}
		}
	}
}

// syncClient asks the session's worker to send c a STATE_SYNC; false when
// the worker stays busy.
func (h *hub) syncClient(c *client) bool {
	t := time.NewTimer(h.r.cfg.RedisTimeout)
	defer t.Stop()
	select {
	case c.sess.worker <- job{s: c.sess, kind: jobSyncClient, c: c}:
		return true
	case <-t.C:
		return false
	case <-h.done:
		return false
	}
}

// work runs the jobs of the sessions hashed to one worker, in order, so a
// session's versions only move forward: anything older than what was last
// sent (for example an update overtaken by a resync) is skipped.
func (h *hub) work(jobs chan job) {
	for {
		select {
		case j := <-jobs:
			switch j.kind {
			case jobState:
				h.onState(j.s, j.payload)
			case jobMsg:
				h.fanout(j.s, j.payload, scanInt(j.payload, keyTimestamp))
			case jobResync:
				h.resyncSession(j.s)
			case jobSyncClient:
				h.syncOne(j.c)
			}
		case <-h.done:
			return
		}
	}
}

func (h *hub) onState(s *sess, p []byte) {
	switch {
	case bytes.HasPrefix(p, prefixUpdate):
		at := stampOf(p)
		if !at.after(s.last) {
			return
		}
		s.last = at
		h.fanout(s, p, scanInt(p, keyTimestamp))
	case bytes.HasPrefix(p, prefixDelta) || len(p) > 0 && p[0] != '{':
		// a packed message (lua/README.md "Packed messages"), or a
		// STATE_DELTA in JSON from a revision-2 script
		d, err := fullstate.Decode(p)
		if err != nil {
			h.r.log.Warn("wsrelay: bad state message", "session", s.id, "err", err)
			return
		}
		at := stamp{d.Life, d.Version}
		if !at.after(s.last) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.r.cfg.RedisTimeout)
		state, err := h.r.asm.Apply(ctx, d)
		cancel()
		if err != nil {
			h.r.log.Warn("wsrelay: assemble state", "session", s.id, "err", err)
			h.requestResync(s)
			return
		}
		s.last = at
		h.fanout(s, stateMessage("STATE_UPDATE", s.id, d.Timestamp, at, state), d.Timestamp)
	case bytes.HasPrefix(p, prefixDeleted):
		h.deleted(s, p, scanInt(p, keyTimestamp))
	default:
		h.fanout(s, p, scanInt(p, keyTimestamp))
	}
}

// deleted forwards SESSION_DELETED msg to the clients of s and closes them
// with 1000 once it is sent.
func (h *hub) deleted(s *sess, msg []byte, ts int64) {
	h.r.asm.Forget(s.id)
	s.last = stamp{}
	h.fanout(s, msg, ts)
	for _, c := range *s.clients.Load() {
		c.closeAfter(websocket.CloseNormalClosure, "session deleted")
	}
}

// fanout queues the same bytes for every client of s; ts is the publish
// time (Redis clock ms) when the payload carries one. The writers count the
// deliveries and the latency (Relay.written).
func (h *hub) fanout(s *sess, msg []byte, ts int64) {
	cs := *s.clients.Load()
	if len(cs) == 0 {
		return
	}
	p := &published{ts: ts}
	for _, c := range cs {
		c.queue(out{msg: msg, pub: p})
	}
}

// readState reads the session's current state and its stamp.
func (h *hub) readState(id string) ([]byte, stamp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.r.cfg.RedisTimeout)
	defer cancel()
	state, err := h.r.states.Get(ctx, id)
	if err != nil {
		return nil, stamp{}, err
	}
	return state, stampOf(state), nil
}

// resyncSession sends every client of s STATE_SYNC with the current state,
// unless they already have it. A failed read is retried a second later.
// Redis may have lost the session meanwhile: if this instance had sent a
// version of it, its clients get SESSION_DELETED and are closed, as for a
// live delete; another life, or a version lower than the one sent, means
// it was deleted and created again, and that state is sent and adopted.
func (h *hub) resyncSession(s *sess) {
	if len(*s.clients.Load()) == 0 {
		return
	}
	h.r.m.resyncs.Inc()
	state, at, err := h.readState(s.id)
	switch {
	case errors.Is(err, session.ErrSessionNotFound):
		if s.last.version > 0 { // deleted while Pub/Sub was down
			h.deleted(s, sessionDeletedMessage(s.id, h.r.nowMS()), 0)
		}
		return // otherwise not created yet: nothing to sync
	case err != nil:
		h.r.m.resyncErrors.Inc()
		h.r.log.Warn("wsrelay: resync", "session", s.id, "err", err)
		time.AfterFunc(time.Second, func() {
			select {
			case <-h.done:
			default:
				h.requestResync(s)
			}
		})
		return
	case at == s.last:
		return
	case at.life != s.last.life || at.version < s.last.version: // deleted and created again while Pub/Sub was down
		h.r.asm.Forget(s.id)
	}
	s.last = at
	h.fanout(s, stateMessage("STATE_SYNC", s.id, h.r.nowMS(), at, state), 0)
}

// syncOne answers a client's RECONNECT.
func (h *hub) syncOne(c *client) {
	state, at, err := h.readState(c.sess.id)
	switch {
	case errors.Is(err, session.ErrSessionNotFound):
		c.reply(errSessionNotFound)
	case err != nil:
		h.r.log.Warn("wsrelay: RECONNECT", "session", c.sess.id, "err", err)
		c.reply(errStateUnavail)
	default:
		// last stays: the others have not seen this state yet if its
		// update is still queued behind this job.
		c.reply(stateMessage("STATE_SYNC", c.sess.id, h.r.nowMS(), at, state))
	}
}
