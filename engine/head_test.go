package engine

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// TestRenderedHeadIsTheScripts: the head and participants Go renders from
// readSession-2's packed meta and fragments are, byte for byte, what
// getSession-2 builds in Redis, in every mode and status and with every
// optional field.
func TestRenderedHeadIsTheScripts(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	ctx := context.Background()
	sw := func(id string) error { _, err := s.Switch(ctx, id, session.SwitchArgs{}); return err }
	steps := map[string]func(id string) error{
		"start":    func(id string) error { _, err := s.Start(ctx, id, 0); return err },
		"switch":   sw,
		"pause":    func(id string) error { _, err := s.Pause(ctx, id, 0); return err },
		"resume":   func(id string) error { _, err := s.Resume(ctx, id, 0); return err },
		"complete": func(id string) error { _, err := s.Complete(ctx, id, 0); return err },
		"wait":     func(string) error { time.Sleep(25 * time.Millisecond); return nil },
	}
	everything := func(c *session.Config) {
		c.TimePerCycleMS, c.IncrementMS, c.MaxTimeMS = ptr[int64](20_000), ptr[int64](1_500), ptr[int64](900_000)
		c.Metadata = []byte(`{"room":"é \"b\"","n":[1,2]}`)
		c.WarningsMS = []int64{5_000, 30_000}
		c.AutoAdvance = true
	}
	groups := func(c *session.Config) {
		g := []string{uuid.NewString(), uuid.NewString()}
		for i := range c.Participants {
			c.Participants[i].GroupID = g[i%2]
		}
	}
	for _, tc := range []struct {
		name   string
		mode   string
		bank   int64
		adjust func(*session.Config)
		steps  []string
	}{
		{"per_participant, every option", session.ModePerParticipant, 60_000, everything,
			[]string{"start", "switch", "pause", "resume", "switch", "complete"}},
		{"per_participant, none", session.ModePerParticipant, 60_000, nil, []string{"start", "switch", "complete"}},
		{"per_cycle", session.ModePerCycle, 60_000, func(c *session.Config) { c.TimePerCycleMS = ptr[int64](10_000) },
			[]string{"start", "switch", "pause"}},
		{"per_group, two groups", session.ModePerGroup, 60_000, groups, []string{"start", "switch", "switch", "pause"}},
		{"global", session.ModeGlobal, 60_000, nil, []string{"start", "switch", "pause", "resume"}},
		// the global bank runs out: the head shows 0, not what it went below
		{"global, expired", session.ModeGlobal, 10, nil, []string{"start", "wait", "switch"}},
		{"count_up", session.ModeCountUp, 0, nil, []string{"start", "switch", "complete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newConfig(t, tc.mode, 3, tc.bank)
			if tc.mode == session.ModeGlobal {
				c.TotalTimeMS = ptr(tc.bank)
			}
			if tc.adjust != nil {
				tc.adjust(c)
			}
			mustCreate(t, s, c)
			k := keyspace.For(c.ID)
			for i, step := range append([]string{"create"}, tc.steps...) {
				if step != "create" {
					if err := steps[step](c.ID); err != nil {
						t.Fatalf("%s: %v", step, err)
					}
				}
				head, parts, err := s.Parts(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				wantHead, wantParts, err := s.getParts(ctx, k, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				got, want := fullstate.Build(head, parts), fullstate.Build(wantHead, wantParts)
				if maskServerTime(got) != maskServerTime(want) {
					t.Fatalf("after step %d (%s):\nGo     %s\nscript %s", i, step, got, want)
				}
			}
		})
	}
}
