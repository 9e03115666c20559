package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// recvShards spreads the delivery histograms so that thousands of reader
// goroutines do not queue on one lock.
const recvShards = 32

type lockedHist struct {
	mu sync.Mutex
	h  Hist
}

// deliveries collects delivery latency per repetition.
type deliveries struct {
	reps [][recvShards]lockedHist
}

func newDeliveries(reps int) *deliveries {
	return &deliveries{reps: make([][recvShards]lockedHist, reps)}
}

func (d *deliveries) record(rep, shard int, lat time.Duration) {
	if rep < 0 || rep >= len(d.reps) {
		return
	}
	lh := &d.reps[rep][shard%recvShards]
	lh.mu.Lock()
	lh.h.Record(lat)
	lh.mu.Unlock()
}

func (d *deliveries) hist(rep int) *Hist {
	out := &Hist{}
	for i := range d.reps[rep] {
		lh := &d.reps[rep][i]
		lh.mu.Lock()
		out.Merge(&lh.h)
		lh.mu.Unlock()
	}
	return out
}

// errCounter counts errors by kind from many goroutines.
type errCounter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errCounter) add(kind string, n int64) {
	if n == 0 {
		return
	}
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[kind] += n
	e.mu.Unlock()
}

func (e *errCounter) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// wsClient is one WebSocket client of one session. Its reader checks that
// versions arrive in order with no gaps and records delivery latency.
type wsClient struct {
	s     *sess
	conn  *websocket.Conn
	shard int
	chk   versionCheck // reader goroutine only, until done is closed
	last  atomic.Int64 // last in-order version, for the drain wait
	done  chan struct{}

	pending []pendingRecv // receipts whose switch reply had not come back yet
}

type pendingRecv struct {
	v    int64
	recv int64 // unix ns
}

// dialAll connects k clients to each session, at most par at a time, and
// waits for each one's CONNECTED. ready runs as soon as a client is
// connected: its reader must start at once, or the server's heartbeat
// drops it for not answering pings while the others are still dialing.
func dialAll(ctx context.Context, t target, sessions []*sess, k, par int, ready func(*wsClient)) ([]*wsClient, error) {
	// Clients dial from 16 loopback source addresses: one address has
	// about 28,000 ephemeral ports, and a run of 20,000 clients after
	// others whose sockets sit in TIME_WAIT would run out of them.
	dialers := make([]*websocket.Dialer, 16)
	for i := range dialers {
		nd := &net.Dialer{Timeout: 20 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(100+i))}}
		dialers[i] = &websocket.Dialer{
			HandshakeTimeout: 20 * time.Second,
			ReadBufferSize:   2048,
			WriteBufferSize:  256,
			NetDialContext:   nd.DialContext,
		}
	}
	clients := make([]*wsClient, 0, len(sessions)*k)
	for _, s := range sessions {
		for j := 0; j < k; j++ {
			clients = append(clients, &wsClient{s: s, shard: len(clients), done: make(chan struct{})})
		}
	}
	err := forEach(ctx, len(clients), par, func(i int) error {
		c := clients[i]
		if err := c.dial(ctx, dialers[i%len(dialers)], t.wsURL(c.s.id)); err != nil {
			return err
		}
		ready(c)
		return nil
	})
	if err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

func (c *wsClient) dial(ctx context.Context, d *websocket.Dialer, url string) error {
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return errors.New("ws dial: " + err.Error())
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return errors.New("ws: no CONNECTED: " + err.Error())
	}
	if msgType(b) != "CONNECTED" {
		conn.Close()
		return errors.New("ws: first message is not CONNECTED: " + string(b[:min(len(b), 120)]))
	}
	_ = conn.SetReadDeadline(time.Time{})
	c.conn = conn
	c.s.mu.Lock()
	c.chk = newVersionCheck(c.s.base)
	c.s.mu.Unlock()
	c.last.Store(c.chk.last())
	return nil
}

// read runs until the connection closes. Nothing but the tool closes it,
// so anything else is counted as an error.
func (c *wsClient) read(del *deliveries, errs *errCounter, closing *atomic.Bool) {
	defer close(c.done)
	for {
		_, b, err := c.conn.ReadMessage()
		now := time.Now().UnixNano()
		if err != nil {
			if !closing.Load() {
				errs.add(closeKind(err), 1)
			}
			return
		}
		switch msgType(b) {
		case "STATE_UPDATE":
			v := msgVersion(b)
			if v < 0 {
				errs.add("ws_update_without_version", 1)
				continue
			}
			if kind := c.chk.see(v); kind != "" {
				errs.add(kind, 1)
				continue
			}
			c.last.Store(v)
			c.match(del, v, now)
		case "PONG":
		case "SESSION_DELETED":
			if !closing.Load() {
				errs.add("ws_unexpected_SESSION_DELETED", 1)
			}
		case "STATE_SYNC":
			// A resync means the relay lost messages on the way.
			errs.add("ws_STATE_SYNC", 1)
		default:
			errs.add("ws_"+msgTypeOr(b, "unparsable"), 1)
		}
	}
}

func msgTypeOr(b []byte, def string) string {
	if t := msgType(b); t != "" {
		return t
	}
	return def
}

// match records the delivery latency of version v received at recv, or
// keeps it until the switch's reply has come back.
func (c *wsClient) match(del *deliveries, v, recv int64) {
	if snd, ok := c.s.sendOf(v); ok {
		del.record(int(snd.rep), c.shard, time.Duration(recv-snd.due))
	} else {
		c.pending = append(c.pending, pendingRecv{v: v, recv: recv})
	}
	if len(c.pending) > 1 {
		c.resolve(del)
	}
}

// resolve records the kept receipts whose replies have come back since.
func (c *wsClient) resolve(del *deliveries) {
	keep := c.pending[:0]
	for _, p := range c.pending {
		if snd, ok := c.s.sendOf(p.v); ok {
			del.record(int(snd.rep), c.shard, time.Duration(p.recv-snd.due))
		} else {
			keep = append(keep, p)
		}
	}
	c.pending = keep
}

// drain waits, up to timeout, until every client has seen its session's
// final version.
func drain(clients []*wsClient, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, c := range clients {
		final := c.s.finalVersion()
		for c.last.Load() < final && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// finish closes every client and counts what each never received.
func finish(clients []*wsClient, del *deliveries, errs *errCounter, closing *atomic.Bool) (missed int64) {
	closing.Store(true)
	closeAll(clients)
	for _, c := range clients {
		if c.conn == nil {
			continue
		}
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			errs.add("ws_reader_stuck", 1)
			continue
		}
		c.resolve(del)
		errs.add("ws_unmatched_receipt", int64(len(c.pending)))
		n := c.chk.finish(c.s.finalVersion())
		missed += c.chk.missed
		errs.add("version_never_received", n)
	}
	return missed
}

func closeAll(clients []*wsClient) {
	for _, c := range clients {
		if c.conn != nil {
			_ = c.conn.Close()
		}
	}
}

// closeKind names how a connection ended: "ws_closed 1013 slow client",
// or "ws_closed" when the peer just dropped it.
func closeKind(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return "ws_closed " + strconv.Itoa(ce.Code) + " " + ce.Text
	}
	return "ws_closed"
}
