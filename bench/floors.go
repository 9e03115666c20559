package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
)

// listenLoopback opens a listener on a free loopback port.
func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// bareBody is about the size of a 4-participant switch reply, so the floor
// moves as many bytes as the real thing.
var bareBody = func() []byte {
	b := []byte(`{"data":{"version":1,"pad":"`)
	for i := 0; i < 1200; i++ {
		b = append(b, 'x')
	}
	return append(b, `"}}`...)
}()

// startBareHTTP serves a fixed body for every request: the cheapest a
// fasthttp server on this machine can answer.
func startBareHTTP() (addr string, stop func(), err error) {
	ln, err := listenLoopback()
	if err != nil {
		return "", nil, err
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentTypeBytes(ctJSON)
		ctx.SetBody(bareBody)
	}}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	return ln.Addr().String(), func() { _ = srv.Shutdown() }, nil
}

// miniRelay is the least a Pub/Sub-to-WebSocket relay can do: one
// subscription for the instance, a map from channel to connections, and
// each message written straight to each connection from the reader. No
// queues, no ping, no slow-client handling: the floor, not a product.
type miniRelay struct {
	rdb redis.UniversalClient
	ps  *redis.PubSub

	mu      sync.Mutex
	conns   map[string]map[*relayConn]struct{} // channel -> clients
	waiting map[string][]chan struct{}         // channel -> waiting for SUBSCRIBE to be confirmed

	drop func(n int64) bool // tests: lose the n-th message (from 0) on purpose
	n    int64
}

type relayConn struct {
	mu sync.Mutex
	c  *websocket.Conn
}

var upgrader = websocket.FastHTTPUpgrader{ReadBufferSize: 512, WriteBufferSize: 4096}

func startMiniRelay(ctx context.Context, rdb redis.UniversalClient) (addr string, stop func(), err error) {
	return startRelay(ctx, rdb, nil)
}

func startRelay(ctx context.Context, rdb redis.UniversalClient, drop func(int64) bool) (addr string, stop func(), err error) {
	ln, err := listenLoopback()
	if err != nil {
		return "", nil, err
	}
	r := &miniRelay{rdb: rdb, ps: rdb.SSubscribe(ctx), conns: map[string]map[*relayConn]struct{}{}, waiting: map[string][]chan struct{}{}, drop: drop}
	go r.read(ctx)
	srv := &fasthttp.Server{Handler: r.serve}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	return ln.Addr().String(), func() { _ = srv.Shutdown(); _ = r.ps.Close() }, nil
}

func (r *miniRelay) read(ctx context.Context) {
	for ctx.Err() == nil {
		m, err := r.ps.Receive(ctx)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *redis.Subscription:
			r.mu.Lock()
			for _, w := range r.waiting[m.Channel] {
				close(w)
			}
			delete(r.waiting, m.Channel)
			r.mu.Unlock()
		case *redis.Message:
			r.n++
			if r.drop != nil && r.drop(r.n-1) {
				continue
			}
			payload, err := render(m.Payload)
			if err != nil {
				continue
			}
			r.mu.Lock()
			for c := range r.conns[m.Channel] {
				c.mu.Lock()
				_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_ = c.c.WriteMessage(websocket.TextMessage, payload)
				c.mu.Unlock()
			}
			r.mu.Unlock()
		}
	}
}

// render turns what a script published into what a client gets: a
// packed message of the whole state becomes STATE_UPDATE (a relay's least
// work per message); JSON (SESSION_DELETED) passes as it is.
func render(payload string) ([]byte, error) {
	if strings.HasPrefix(payload, "{") {
		return []byte(payload), nil
	}
	d, err := fullstate.Decode([]byte(payload))
	if err != nil || !d.Full {
		return nil, errors.New("bench: the minimal relay forwards whole states only")
	}
	return fullstate.StateMessage("STATE_UPDATE", d.SessionID, d.Timestamp, d.Life, d.Version,
		fullstate.Build(d.Session, d.Participants)), nil
}

func (r *miniRelay) serve(ctx *fasthttp.RequestCtx) {
	id := string(ctx.QueryArgs().Peek("sessionId"))
	ch := keyspace.For(id).StateChannel
	_ = upgrader.Upgrade(ctx, func(c *websocket.Conn) {
		rc := &relayConn{c: c}
		r.mu.Lock()
		_, subscribed := r.conns[ch]
		if !subscribed {
			r.conns[ch] = map[*relayConn]struct{}{}
		}
		r.conns[ch][rc] = struct{}{}
		var wait chan struct{}
		if !subscribed || len(r.waiting[ch]) > 0 {
			// Not confirmed yet: CONNECTED must wait for it.
			wait = make(chan struct{})
			r.waiting[ch] = append(r.waiting[ch], wait)
		}
		r.mu.Unlock()
		if !subscribed {
			if err := r.ps.SSubscribe(context.Background(), ch); err != nil {
				return
			}
		}
		if wait != nil {
			select {
			case <-wait:
			case <-time.After(10 * time.Second):
			}
		}
		rc.mu.Lock()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"CONNECTED","sessionId":"`+id+`","timestamp":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`}`))
		rc.mu.Unlock()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		r.mu.Lock()
		delete(r.conns[ch], rc)
		if len(r.conns[ch]) == 0 {
			delete(r.conns, ch)
			_ = r.ps.SUnsubscribe(context.Background(), ch)
		}
		r.mu.Unlock()
	})
}
