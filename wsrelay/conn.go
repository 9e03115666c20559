package wsrelay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
)

// client is one WebSocket connection. Only its writer goroutine writes
// data frames; workers, the reader and the heartbeat only queue, without
// blocking.
type client struct {
	r    *Relay
	conn *websocket.Conn
	sess *sess
	q    chan out
	slot int // heartbeat slot, fixed at register (Relay.slots)

	started    atomic.Bool // CONNECTED sent: the heartbeat watches it
	alive      atomic.Bool // a pong (or any frame) arrived since the last ping
	syncing    atomic.Bool // a RECONNECT is pending until its reply is written
	once       sync.Once   // the first stop/closeAfter picks the close code
	doneOnce   sync.Once
	done       chan struct{} // closed by stop: the writer closes the connection
	closeCode  int
	closeText  string
	writerDone chan struct{}

	// connMu and released keep other goroutines (heartbeat, workers) off
	// conn once serve has returned: fasthttp then reclaims the hijacked
	// connection and zeroes it, so a late deadline call would crash.
	connMu   sync.Mutex
	released bool

	// With Config.Auth: the token's sub, and the end of the held token
	// (unix ns; AUTH moves it) at which expiry closes the connection.
	sub    string
	until  atomic.Int64
	expiry *time.Timer
}

// out is one queue entry: a message, or an instruction for the writer.
// pub is set on fanned-out messages, which the writer counts once written.
type out struct {
	msg []byte
	pub *published
	op  uint8
}

// published is one fanned-out message, shared by all its queue entries
// (one allocation per message, none per client).
type published struct {
	ts    int64       // publish time, Redis clock ms; 0 = not known
	timed atomic.Bool // the first write recorded publish_to_send_seconds
}

// written records a fanned-out message the writer has just written: its
// latency once (first client's write), and one delivery.
func (r *Relay) written(p *published) {
	if p.ts > 0 && !p.timed.Load() && p.timed.CompareAndSwap(false, true) {
		// Below 0 only by the clock's error (ms truncation, offset
		// estimate): the sample is kept, as 0, so every message counts.
		r.m.publishToSend.Update(float64(max(0, r.nowMS()-p.ts)) / 1000)
	}
	r.m.delivered.Inc()
}

const (
	opSend  uint8 = iota
	opReply       // send the reply to a RECONNECT, then clear syncing
	opPing        // send a protocol ping
	opClose       // send the close frame chosen by closeAfter
	opWake        // look at done
)

// serve runs one accepted connection until it ends.
func (r *Relay) serve(conn *websocket.Conn, id, sub string, until time.Time) {
	c := &client{r: r, conn: conn, q: make(chan out, r.cfg.QueueSize),
		done: make(chan struct{}), writerDone: make(chan struct{}), sub: sub}
	c.alive.Store(true)
	defer c.release()
	if !r.register(c) {
		reject(conn, websocket.CloseGoingAway, "server shutting down")
		return
	}
	defer r.unregister(c)
	if r.cfg.Auth != nil {
		c.until.Store(until.UnixNano())
		// Armed far off, then Reset: c.expiry is set before expire can run.
		c.expiry = time.AfterFunc(time.Hour, c.expire)
		c.expiry.Reset(time.Until(until))
		defer c.expiry.Stop()
	}

	// Join first, so every message dispatched from here on is queued for c;
	// CONNECTED goes out only once Redis confirmed the subscription, so the
	// client misses no change made after it (V1_API.md).
	c.sess = r.hub.join(id, c)
	defer r.hub.leave(c.sess, c)
	timer := time.NewTimer(r.cfg.SubscribeTimeout)
	select {
	case <-c.sess.ready:
		timer.Stop()
	case <-timer.C:
		r.m.rejectSub.Inc()
		reject(conn, websocket.CloseTryAgainLater, "subscription not confirmed")
		return
	case <-c.done:
		timer.Stop()
		c.writeClose()
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(r.cfg.WriteTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, connectedMessage(id, r.nowMS())); err != nil {
		return
	}
	c.started.Store(true)
	go c.writeLoop()
	c.readLoop()
	c.stop(0, "")
	<-c.writerDone
}

// expire closes the connection with 4001 once the held token has expired;
// an AUTH may have moved the end since the timer was set.
func (c *client) expire() {
	if d := time.Until(time.Unix(0, c.until.Load())); d > 0 {
		c.expiry.Reset(d)
		return
	}
	c.r.m.tokenExpired.Inc()
	c.stop(closeTokenExpired, "token expired")
}

// closeTokenExpired is the close code for an expired token (the
// 4000-4999 range is the application's).
const closeTokenExpired = 4001

// auth replaces the connection's token (an AUTH message).
func (c *client) auth(token string) {
	until, code, msg := c.r.cfg.Auth.Refresh(token, c.sess.id, c.sub)
	if code != "" {
		c.send(errorMessage(code, msg))
		return
	}
	c.until.Store(until.UnixNano())
	c.expiry.Reset(time.Until(until))
	c.send(authOKMessage(until.UnixMilli()))
}

// send queues msg without blocking; a full queue disconnects the client: a
// blocked write fails at once and the connection is cut without a close
// frame; a writer that was not blocked sends 1013 "slow client" first.
func (c *client) send(msg []byte) bool { return c.queue(out{msg: msg}) }

// reply queues the answer to a RECONNECT (STATE_SYNC or ERROR); the next
// RECONNECT is taken once it is written.
func (c *client) reply(msg []byte) bool { return c.queue(out{msg: msg, op: opReply}) }

func (c *client) queue(o out) bool {
	select {
	case c.q <- o:
		return true
	default:
	}
	select {
	case <-c.done:
	default:
		c.r.m.slow.Inc()
		c.stop(websocket.CloseTryAgainLater, "slow client")
		// Its writer is likely blocked on a full socket: fail that write
		// now rather than after WriteTimeout.
		c.cutWrites(time.Now())
	}
	return false
}

// cutWrites moves the socket's write deadline to t, so that a write blocked
// on a full socket fails by then rather than after WriteTimeout. The writer
// sets its own deadline again before its next frame.
func (c *client) cutWrites(t time.Time) {
	c.connMu.Lock()
	if !c.released {
		_ = c.conn.NetConn().SetWriteDeadline(t)
	}
	c.connMu.Unlock()
}

// closeAfter closes the connection with code once what is queued is sent.
func (c *client) closeAfter(code int, text string) {
	c.once.Do(func() { c.closeCode, c.closeText = code, text })
	select {
	case c.q <- out{op: opClose}:
	default:
		c.stop(code, text)
	}
}

// stop makes the writer close the connection now, with a close frame when
// code != 0.
func (c *client) stop(code int, text string) {
	c.once.Do(func() { c.closeCode, c.closeText = code, text })
	c.doneOnce.Do(func() { close(c.done) })
	// Wake a writer waiting on an empty queue; a full queue means it is
	// busy and checks done before its next write.
	select {
	case c.q <- out{op: opWake}:
	default:
	}
}

// writeLoop waits on the queue alone (a one-channel receive is the
// cheapest wake-up) and looks at done before every write.
func (c *client) writeLoop() {
	defer close(c.writerDone)
	wt := c.r.cfg.WriteTimeout
	var deadline time.Time
	for {
		o := <-c.q
		select {
		case <-c.done:
			c.writeClose()
			return
		default:
		}
		switch o.op {
		case opSend, opReply:
			// The runtime skips the timer update when a write reuses the
			// previous deadline, so it moves only once half of it is used.
			if now := time.Now(); deadline.Sub(now) < wt/2 {
				deadline = now.Add(wt)
				_ = c.conn.SetWriteDeadline(deadline)
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, o.msg); err != nil {
				select {
				case <-c.done: // stopped (slow, heartbeat): counted there
				default:
					c.r.m.writeErrors.Inc()
				}
				c.terminate()
				return
			}
			if o.pub != nil {
				c.r.written(o.pub)
			} else if o.op == opReply {
				c.syncing.Store(false)
			}
		case opPing:
			// WriteControl takes its own deadline; the stored one, which
			// `deadline` mirrors, is untouched.
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wt)); err != nil {
				c.terminate()
				return
			}
		case opClose:
			c.writeClose()
			return
		}
	}
}

// heartbeatSlots is how many groups the heartbeat spreads the clients
// over: one group is pinged every PingInterval/heartbeatSlots, so 10,000
// clients are 200 pings every 100 ms rather than 10,000 at once.
const heartbeatSlots = 50

// makeSlots makes the heartbeat groups, fewer when the interval is under
// heartbeatSlots ms so that a tick is at least 1 ms.
func makeSlots(interval time.Duration) []map[*client]struct{} {
	n := min(heartbeatSlots, max(1, int(interval/time.Millisecond)))
	slots := make([]map[*client]struct{}, n)
	for i := range slots {
		slots[i] = make(map[*client]struct{})
	}
	return slots
}

// heartbeat visits one slot per tick, round robin, so each client's slot
// comes back every len(slots) ticks: at least one PingInterval apart (the
// tick is rounded up, and a Ticker drops ticks rather than bunching them).
// A started client that sent nothing (no pong) since its previous visit is
// dropped; the others are pinged.
func (r *Relay) heartbeat(done <-chan struct{}) {
	n := len(r.slots)
	t := time.NewTicker((r.cfg.PingInterval + time.Duration(n) - 1) / time.Duration(n))
	defer t.Stop()
	var cs []*client
	for slot := 0; ; slot = (slot + 1) % n {
		select {
		case <-t.C:
		case <-done:
			return
		}
		r.mu.Lock()
		cs = cs[:0]
		for c := range r.slots[slot] {
			cs = append(cs, c)
		}
		r.mu.Unlock()
		for _, c := range cs {
			if !c.started.Load() {
				continue
			}
			if !c.alive.Swap(false) {
				r.m.heartbeat.Inc()
				c.stop(0, "") // terminate: the peer is gone or not answering
				c.terminate()
				continue
			}
			select {
			case c.q <- out{op: opPing}:
			default: // a full queue is the slow-client check's business
			}
		}
		clear(cs) // keep no reference to a client that may leave
	}
}

// writeClose sends the close frame chosen by stop/closeAfter (if any) and
// ends the connection.
func (c *client) writeClose() {
	if c.closeCode != 0 {
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Now().Add(time.Second))
	}
	c.terminate()
}

// terminate ends the read loop, and so the connection: fasthttp closes a
// hijacked connection when its handler returns (Close on it is a no-op). A
// write blocked on a full socket fails at once. Once serve has returned it
// does nothing: the connection is already gone.
func (c *client) terminate() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.released {
		return
	}
	_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	_ = c.conn.NetConn().SetWriteDeadline(time.Unix(1, 0))
	_ = c.conn.Close()
}

// release runs as serve returns, before fasthttp reclaims the connection.
func (c *client) release() {
	c.connMu.Lock()
	c.released = true
	c.connMu.Unlock()
}

// clientMessage is what a client may send.
type clientMessage struct {
	Type            string          `json:"type"`
	ClientTimestamp json.RawMessage `json:"client_timestamp"`
	Token           string          `json:"token"` // AUTH
}

func (c *client) readLoop() {
	c.conn.SetReadLimit(c.r.cfg.MaxMessageBytes)
	c.conn.SetPongHandler(func(string) error {
		c.alive.Store(true)
		return nil
	})
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.alive.Store(true)
		var m clientMessage
		if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
			c.send(errMalformed)
			continue
		}
		switch m.Type {
		case "PING":
			ts := m.ClientTimestamp
			if len(ts) == 4 && string(ts) == "null" {
				ts = nil
			}
			c.send(pongMessage(c.r.nowMS(), ts))
		case "RECONNECT":
			// One at a time: a RECONNECT while one is pending (its reply not
			// yet written) is answered by that reply, so a client cannot
			// queue a full state per frame. The session's worker reads the
			// state, so the STATE_SYNC is never older than an update it
			// already sent.
			if !c.syncing.CompareAndSwap(false, true) {
				continue
			}
			if !c.r.hub.syncClient(c) {
				c.syncing.Store(false)
				c.send(errBusy)
			}
		case "AUTH":
			if c.r.cfg.Auth == nil {
				c.send(errUnknownType)
				continue
			}
			c.auth(m.Token)
		default:
			c.send(errUnknownType)
		}
	}
}
