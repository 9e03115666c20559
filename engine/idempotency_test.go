package engine

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// TestIdempotentTransitions runs every mutating call twice under one
// Idempotency-Key: the repeat gets the same bytes, flagged as replayed,
// and changes, publishes and records nothing; the key with another
// request is IDEMPOTENCY_KEY_REUSED and changes nothing either. At 40
// participants the first reply is assembled in Go from a delta and the
// replay is the full state the script kept: they must be the same bytes.
func TestIdempotentTransitions(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	type op struct {
		name  string
		setup []string // transitions that bring the session to where op applies
		do    func(id string, c *session.Call) ([]byte, error)
	}
	state := func(f func(context.Context, string, int64, ...*session.Call) ([]byte, error)) func(string, *session.Call) ([]byte, error) {
		return func(id string, c *session.Call) ([]byte, error) { return f(ctx, id, 0, c) }
	}
	var cfg *session.Config // the session op "create" creates
	ops := []op{
		{"create", nil, func(_ string, c *session.Call) ([]byte, error) { return s.Create(ctx, cfg, c) }},
		{"start", []string{"create"}, state(s.Start)},
		{"switch", []string{"create", "start"}, func(id string, c *session.Call) ([]byte, error) {
			return s.Switch(ctx, id, session.SwitchArgs{}, c)
		}},
		{"pause", []string{"create", "start"}, state(s.Pause)},
		{"resume", []string{"create", "start", "pause"}, state(s.Resume)},
		{"complete", []string{"create", "start"}, state(s.Complete)},
		{"delete", []string{"create", "start"}, func(id string, c *session.Call) ([]byte, error) {
			existed, err := s.Delete(ctx, id, 0, c)
			if existed {
				return []byte("existed"), err
			}
			return []byte("absent"), err
		}},
	}
	byName := map[string]op{}
	for _, o := range ops {
		byName[o.name] = o
	}
	for _, n := range []int{3, 40} {
		for _, o := range ops {
			t.Run(o.name+"/"+strconv.Itoa(n), func(t *testing.T) {
				cfg = newConfig(t, session.ModePerParticipant, n, 600_000)
				id := cfg.ID
				k := keyspace.For(id)
				for _, step := range o.setup {
					if _, err := byName[step].do(id, nil); err != nil {
						t.Fatalf("setup %s: %v", step, err)
					}
				}
				key := "key-" + o.name
				t.Cleanup(func() { rdb.Del(context.Background(), k.Idem(key)) })
				first := &session.Call{IdemKey: key, Fingerprint: "fp-1", Actor: "host-1"}
				want, err := o.do(id, first)
				if err != nil || first.Replayed {
					t.Fatalf("first call: %v (replayed %v)", err, first.Replayed)
				}
				before, _ := s.Get(ctx, id)
				w := watch(t, rdb, id)
				mark := streamMark(t, rdb, k.Stream)

				again := &session.Call{IdemKey: key, Fingerprint: "fp-1", Actor: "host-1"}
				got, err := o.do(id, again)
				if err != nil || !again.Replayed {
					t.Fatalf("repeat: %v (replayed %v)", err, again.Replayed)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("repeat reply differs:\n%s\n%s", got, want)
				}
				other := &session.Call{IdemKey: key, Fingerprint: "fp-2"}
				if _, err := o.do(id, other); !errors.Is(err, session.ErrIdempotencyReused) {
					t.Errorf("another request under the key: %v, want IDEMPOTENCY_KEY_REUSED", err)
				}
				after, _ := s.Get(ctx, id)
				if maskServerTime(before) != maskServerTime(after) {
					t.Errorf("a repeat changed the session:\n%s\n%s", before, after)
				}
				if msgs := w.drain(t); len(msgs) != 0 {
					t.Errorf("a repeat published %d messages", len(msgs))
				}
				if evs := eventsSince(t, rdb, k.Stream, mark, id); len(evs) != 0 {
					t.Errorf("a repeat recorded %d events", len(evs))
				}
				ttl := rdb.PTTL(ctx, k.Idem(key)).Val()
				if ttl <= DefaultIdempotencyTTL-time.Minute || ttl > DefaultIdempotencyTTL {
					t.Errorf("record TTL %v, want about %v", ttl, DefaultIdempotencyTTL)
				}
			})
		}
	}
}

// TestIdempotencyKeptOnlyOnSuccess: a refused call keeps nothing, so the
// same key may carry the retry once the session allows it.
func TestIdempotencyKeptOnlyOnSuccess(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 600_000)
	mustCreate(t, s, c)
	k := keyspace.For(c.ID)
	t.Cleanup(func() { rdb.Del(context.Background(), k.Idem("sw")) })
	call := &session.Call{IdemKey: "sw", Fingerprint: "fp"}
	if _, err := s.Switch(ctx, c.ID, session.SwitchArgs{}, call); !errors.Is(err, session.ErrInvalidTransition) {
		t.Fatalf("switch on a pending session: %v", err)
	}
	if n := rdb.Exists(ctx, k.Idem("sw")).Val(); n != 0 {
		t.Fatal("a refused call left a record")
	}
	if _, err := s.Start(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	b, err := s.Switch(ctx, c.ID, session.SwitchArgs{}, call)
	if err != nil || call.Replayed {
		t.Fatalf("retry under the key after start: %v (replayed %v)", err, call.Replayed)
	}
	if st := decode[State](t, b); st.Version != 3 {
		t.Errorf("version %d, want 3", st.Version)
	}
}

// TestActorRecorded: the call's actor reaches the audit event.
func TestActorRecorded(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 600_000)
	k := keyspace.For(c.ID)
	mark := streamMark(t, rdb, k.Stream)
	if _, err := s.Create(ctx, c, &session.Call{Actor: "user-7"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	evs := eventsSince(t, rdb, k.Stream, mark, c.ID)
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	for i, want := range []string{"user-7", ""} {
		if got := evs[i].Values["actor"]; got != want {
			t.Errorf("event %d actor %q, want %q", i, got, want)
		}
	}
}
