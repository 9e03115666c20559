package wsrelay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	json "github.com/goccy/go-json"
)

// client is one WebSocket connection. Only its writer goroutine writes
// data frames; workers and the reader only queue bytes, without blocking.
type client struct {
	r    *Relay
	conn *websocket.Conn
	sess *sess
	q    chan []byte // nil entry = write the close frame set by closeAfter

	alive      atomic.Bool // a pong (or any frame) arrived since the last ping
	once       sync.Once   // the first stop/closeAfter picks the close code
	doneOnce   sync.Once
	done       chan struct{} // closed by stop: the writer closes the connection
	closeCode  int
	closeText  string
	writerDone chan struct{}
}

// serve runs one accepted connection until it ends.
func (r *Relay) serve(conn *websocket.Conn, id string) {
	c := &client{r: r, conn: conn, q: make(chan []byte, r.cfg.QueueSize),
		done: make(chan struct{}), writerDone: make(chan struct{})}
	c.alive.Store(true)
	if !r.register(c) {
		reject(conn, websocket.CloseGoingAway, "server shutting down")
		return
	}
	defer r.unregister(c)

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
	if err := conn.WriteMessage(websocket.TextMessage, connectedMessage(id, r.clock.NowMS())); err != nil {
		return
	}
	go c.writeLoop()
	c.readLoop()
	c.stop(0, "")
	<-c.writerDone
}

// send queues msg without blocking; a full queue disconnects the client.
func (c *client) send(msg []byte) bool {
	select {
	case c.q <- msg:
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
		_ = c.conn.NetConn().SetWriteDeadline(time.Now())
	}
	return false
}

// closeAfter closes the connection with code once what is queued is sent.
func (c *client) closeAfter(code int, text string) {
	c.once.Do(func() { c.closeCode, c.closeText = code, text })
	select {
	case c.q <- nil:
	default:
		c.stop(code, text)
	}
}

// stop makes the writer close the connection now, with a close frame when
// code != 0.
func (c *client) stop(code int, text string) {
	c.once.Do(func() { c.closeCode, c.closeText = code, text })
	c.doneOnce.Do(func() { close(c.done) })
}

func (c *client) writeLoop() {
	defer close(c.writerDone)
	wt := c.r.cfg.WriteTimeout
	ping := time.NewTicker(c.r.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case msg := <-c.q:
			if msg == nil {
				c.writeClose()
				return
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(wt))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				c.r.m.writeErrors.Inc()
				c.terminate()
				return
			}
			c.r.m.delivered.Inc()
		case <-ping.C:
			if !c.alive.Swap(false) {
				c.r.m.heartbeat.Inc()
				c.terminate() // the peer is gone or not answering
				return
			}
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wt)); err != nil {
				c.terminate()
				return
			}
		case <-c.done:
			c.writeClose()
			return
		}
	}
}

// writeClose sends the close frame chosen by stop/closeAfter (if any) and
// closes the TCP connection, which also ends the read loop.
func (c *client) writeClose() {
	if c.closeCode != 0 {
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(c.closeCode, c.closeText), time.Now().Add(time.Second))
	}
	c.terminate()
}

// terminate ends the read loop, and so the connection: fasthttp closes a
// hijacked connection when its handler returns (Close on it is a no-op).
func (c *client) terminate() {
	_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	_ = c.conn.Close()
}

// clientMessage is what a client may send.
type clientMessage struct {
	Type            string          `json:"type"`
	ClientTimestamp json.RawMessage `json:"client_timestamp"`
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
			c.send(pongMessage(c.r.clock.NowMS(), ts))
		case "RECONNECT":
			// The session's worker reads the state, so the STATE_SYNC is
			// never older than an update it already sent.
			if !c.r.hub.syncClient(c) {
				c.send(errBusy)
			}
		default:
			c.send(errUnknownType)
		}
	}
}
