package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/session"
)

// TestBatch: transitions queued on pipelines run as the engine's calls do,
// one version each, and a refused one reports its script error at Exec.
func TestBatch(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	cfgs := make([]*session.Config, 5)
	for i := range cfgs {
		cfgs[i] = newConfig(t, session.ModePerParticipant, 3, 600_000)
	}
	for _, round := range []func(b Batch, c *session.Config){
		func(b Batch, c *session.Config) { b.Create(c) },
		func(b Batch, c *session.Config) { b.Start(c.ID) },
		func(b Batch, c *session.Config) { b.Switch(c.ID, session.SwitchArgs{}) },
		func(b Batch, c *session.Config) { b.Switch(c.ID, session.SwitchArgs{}) },
	} {
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range cfgs {
				round(s.Batch(ctx, p), c)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cfgs {
		b, err := s.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st := decode[State](t, b); st.Version != 4 || *st.ActiveParticipantID != c.Participants[2].ID {
			t.Errorf("%s: version %d active %v, want 4 and the third participant", c.ID, st.Version, st.ActiveParticipantID)
		}
	}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		s.Batch(ctx, p).Start(cfgs[0].ID) // already running
		return nil
	})
	if !errors.Is(scriptErr(err, true), session.ErrInvalidTransition) {
		t.Errorf("a refused queued start: %v", err)
	}
}
