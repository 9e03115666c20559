package servertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"
)

// TimeWatch collects the TimeMsg messages published on some sessions'
// message channels (keyspace's MsgChannel), in arrival order.
type TimeWatch struct {
	mu   sync.Mutex
	msgs []TimeMsg
}

// WatchTime subscribes (SSUBSCRIBE) to chans and collects what they carry
// until t ends; a message that does not decode fails t.
func WatchTime(t testing.TB, rdb redis.UniversalClient, chans ...string) *TimeWatch {
	t.Helper()
	ctx := context.Background()
	ps := rdb.SSubscribe(ctx, chans...)
	for range chans {
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w := &TimeWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ps.Channel() {
			var te TimeMsg
			if err := json.Unmarshal([]byte(m.Payload), &te); err != nil {
				t.Errorf("message %s: %v", m.Payload, err)
				continue
			}
			w.mu.Lock()
			w.msgs = append(w.msgs, te)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { ps.Close(); <-done })
	return w
}

// Msgs returns the messages so far.
func (w *TimeWatch) Msgs() []TimeMsg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]TimeMsg(nil), w.msgs...)
}

// BySession returns the messages so far by session id.
func (w *TimeWatch) BySession() map[string][]TimeMsg {
	out := map[string][]TimeMsg{}
	for _, m := range w.Msgs() {
		out[m.SessionID] = append(out[m.SessionID], m)
	}
	return out
}

// Wait returns the messages so far once there are at least n, failing t
// after 5 s.
func (w *TimeWatch) Wait(t testing.TB, n int) []TimeMsg {
	t.Helper()
	var got []TimeMsg
	WaitFor(t, 5*time.Second, fmt.Sprintf("%d TIME messages", n), func() bool { got = w.Msgs(); return len(got) >= n })
	return got
}
