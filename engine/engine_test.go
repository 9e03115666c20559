package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/lua"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// tolerance of time arithmetic checks, from the plan's unit-test list.
const tolMS = 5

func TestCreateKeepsEveryField(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	g1, g2 := uuid.NewString(), uuid.NewString()
	c := &session.Config{
		ID: uuid.NewString(), SyncMode: session.ModePerGroup,
		TotalTimeMS: ptr[int64](900000), TimePerCycleMS: ptr[int64](30000),
		IncrementMS: ptr[int64](2000), MaxTimeMS: ptr[int64](120000), AutoAdvance: true,
		Metadata: []byte(`{"game":"chess","tags":[],"nested":{"a":1.5,"b":null,"e":{}}}`),
		// given out of index order: the state lists them by participant_index
		Participants: []session.Participant{
			{ID: uuid.NewString(), Index: 7, TotalTimeMS: 300000, GroupID: g2},
			{ID: uuid.NewString(), Index: 2, TotalTimeMS: 200000, GroupID: g1},
			{ID: uuid.NewString(), Index: 4, TotalTimeMS: 100000, GroupID: g1},
		},
	}
	w := watch(t, rdb, c.ID)
	b, err := s.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	st := decode[State](t, b)
	if st.SessionID != c.ID || st.SyncMode != session.ModePerGroup || st.Status != "pending" || st.Version != 1 {
		t.Errorf("head = %s %s %s v%d", st.SessionID, st.SyncMode, st.Status, st.Version)
	}
	if st.ActiveParticipantID != nil || st.CycleStartedAt != nil || st.SessionStartedAt != nil || st.SessionCompletedAt != nil {
		t.Errorf("pending session has active/started fields: %s", b)
	}
	if st.TotalTimeMS != 900000 || *st.TimePerCycleMS != 30000 || *st.IncrementMS != 2000 || *st.MaxTimeMS != 120000 || !st.AutoAdvance {
		t.Errorf("settings not kept: %s", b)
	}
	if !jsonEqual(st.Metadata, c.Metadata) {
		t.Errorf("metadata = %s, want %s", st.Metadata, c.Metadata)
	}
	if ms(&st.CreatedAt) != st.ServerTimeMS || ms(&st.UpdatedAt) != st.ServerTimeMS {
		t.Errorf("created_at %v updated_at %v server_time_ms %d", st.CreatedAt, st.UpdatedAt, st.ServerTimeMS)
	}
	if d := time.Since(st.CreatedAt); d < -time.Minute || d > time.Minute {
		t.Errorf("created_at %v is not now", st.CreatedAt)
	}
	want := []session.Participant{c.Participants[1], c.Participants[2], c.Participants[0]}
	if len(st.Participants) != 3 {
		t.Fatalf("participants: %s", b)
	}
	for i, p := range st.Participants {
		w := want[i]
		if p.ParticipantID != w.ID || p.ParticipantIndex != w.Index || p.TotalTimeMS != w.TotalTimeMS ||
			p.TimeRemainingMS != w.TotalTimeMS || p.TimeUsedMS != 0 || p.CycleCount != 0 || p.IsActive || p.HasExpired {
			t.Errorf("participant %d = %+v, want initial values of %+v", i, p, w)
		}
		if (w.GroupID == "") != (p.GroupID == nil) || (p.GroupID != nil && *p.GroupID != w.GroupID) {
			t.Errorf("participant %d group_id = %v, want %q", i, p.GroupID, w.GroupID)
		}
	}
	// the published message carries the very bytes of the reply
	msgs := w.drain(t)
	if len(msgs) != 1 {
		t.Fatalf("published %d messages", len(msgs))
	}
	if e := decode[envelope](t, msgs[0]); e.Type != "STATE_UPDATE" || e.SessionID != c.ID || e.Version != 1 ||
		e.Timestamp != st.ServerTimeMS || string(e.State) != string(b) {
		t.Errorf("published %s\nreply %s", msgs[0], b)
	}
	// Get gives the same state
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if maskServerTime(got) != maskServerTime(b) {
		t.Errorf("get %s\ncreate %s", got, b)
	}
}

func TestCreateDefaults(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	c := newConfig(t, session.ModePerParticipant, 3, 60000)
	c.Participants[1].TotalTimeMS = 5000
	b, err := s.Create(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	st := decode[State](t, b)
	// total_time_ms defaults to the sum of the banks; optional fields are
	// null (time_per_cycle_ms) or absent (increment_ms, max_time_ms, metadata)
	if st.TotalTimeMS != 125000 || st.TimePerCycleMS != nil || st.IncrementMS != nil || st.MaxTimeMS != nil ||
		st.Metadata != nil || st.AutoAdvance {
		t.Errorf("defaults: %s", b)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(b, &raw)
	for _, f := range []string{"time_per_cycle_ms", "cycle_started_at", "session_started_at", "session_completed_at", "active_participant_id"} {
		if string(raw[f]) != "null" {
			t.Errorf("%s = %s, want required null", f, raw[f])
		}
	}
}

func TestStartActivatesLowestIndex(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	c := newConfig(t, session.ModePerParticipant, 3, 60000)
	c.Participants[0].Index, c.Participants[1].Index, c.Participants[2].Index = 9, 2, 5
	mustCreate(t, s, c)
	b, err := s.Start(context.Background(), c.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	st := decode[State](t, b)
	lowest := c.Participants[1].ID
	if st.Status != "running" || st.Version != 2 || st.ActiveParticipantID == nil || *st.ActiveParticipantID != lowest {
		t.Fatalf("start: %s", b)
	}
	for _, p := range st.Participants {
		if p.IsActive != (p.ParticipantID == lowest) {
			t.Errorf("participant %s is_active = %v", p.ParticipantID, p.IsActive)
		}
	}
	if ms(st.CycleStartedAt) != st.ServerTimeMS || ms(st.SessionStartedAt) != st.ServerTimeMS || ms(&st.UpdatedAt) != st.ServerTimeMS {
		t.Errorf("cycle_started_at %v session_started_at %v server %d", st.CycleStartedAt, st.SessionStartedAt, st.ServerTimeMS)
	}
}

func TestComplete(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	ctx := context.Background()
	for _, from := range []string{"pending", "running", "paused"} {
		t.Run(from, func(t *testing.T) {
			c := newConfig(t, session.ModePerParticipant, 3, 60000)
			mustCreate(t, s, c)
			var before State
			if from != "pending" {
				b, err := s.Start(ctx, c.ID, 0)
				if err != nil {
					t.Fatal(err)
				}
				before = decode[State](t, b)
				time.Sleep(15 * time.Millisecond)
			}
			if from == "paused" {
				b, err := s.Pause(ctx, c.ID, 0)
				if err != nil {
					t.Fatal(err)
				}
				before = decode[State](t, b)
				time.Sleep(15 * time.Millisecond)
			}
			b, err := s.Complete(ctx, c.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			st := decode[State](t, b)
			if st.Status != "completed" || st.ActiveParticipantID != nil || st.CycleStartedAt != nil ||
				ms(st.SessionCompletedAt) != st.ServerTimeMS {
				t.Errorf("complete: %s", b)
			}
			for _, p := range st.Participants {
				if p.IsActive {
					t.Errorf("participant %s still active", p.ParticipantID)
				}
			}
			// a running turn is charged first; a paused one was charged at pause
			used := st.Participants[0].TimeUsedMS
			switch from {
			case "pending":
				if used != 0 {
					t.Errorf("time_used_ms = %d", used)
				}
			case "running":
				if want := st.ServerTimeMS - ms(before.CycleStartedAt); used != want || used < 15 {
					t.Errorf("time_used_ms = %d, want %d", used, want)
				}
			case "paused":
				if want := before.Participants[0].TimeUsedMS; used != want {
					t.Errorf("time_used_ms = %d, want %d (paused time is free)", used, want)
				}
			}
			if _, err := s.Complete(ctx, c.ID, 0); !errors.Is(err, session.ErrInvalidTransition) {
				t.Errorf("second complete: %v", err)
			}
		})
	}
}

func TestSwitchArithmetic(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	c, st0 := running(t, s, session.ModePerParticipant, 3, 60000)
	time.Sleep(40 * time.Millisecond)
	b, err := s.Switch(context.Background(), c.ID, session.SwitchArgs{})
	if err != nil {
		t.Fatal(err)
	}
	st := decode[State](t, b)
	elapsed := st.ServerTimeMS - ms(st0.CycleStartedAt)
	p := st.Participants[0]
	if elapsed < 40-tolMS {
		t.Errorf("Redis saw %d ms elapse over a 40 ms sleep", elapsed)
	}
	if d := p.TimeUsedMS - elapsed; d < -tolMS || d > tolMS {
		t.Errorf("time_used_ms = %d, elapsed %d", p.TimeUsedMS, elapsed)
	}
	if p.TotalTimeMS != 60000-p.TimeUsedMS || p.TimeRemainingMS != p.TotalTimeMS {
		t.Errorf("total_time_ms %d time_remaining_ms %d after %d used", p.TotalTimeMS, p.TimeRemainingMS, p.TimeUsedMS)
	}
	if p.CycleCount != 1 || p.IsActive || p.HasExpired || st.ExpiredParticipantID != nil {
		t.Errorf("ended turn: %+v expired=%v", p, st.ExpiredParticipantID)
	}
	if !st.Participants[1].IsActive || *st.ActiveParticipantID != c.Participants[1].ID || st.Version != 3 {
		t.Errorf("next turn: %s", b)
	}
	if ms(st.CycleStartedAt) != st.ServerTimeMS || ms(st.SessionStartedAt) != ms(st0.SessionStartedAt) {
		t.Errorf("cycle_started_at %v session_started_at %v", st.CycleStartedAt, st.SessionStartedAt)
	}
	for _, p := range st.Participants[1:] {
		if p.TimeUsedMS != 0 || p.CycleCount != 0 || p.TotalTimeMS != 60000 {
			t.Errorf("untouched participant changed: %+v", p)
		}
	}
}

func TestRotationWrapsAndExplicitNext(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	ctx := context.Background()
	c, _ := running(t, s, session.ModePerParticipant, 3, 60000)
	id := func(i int) string { return c.Participants[i].ID }
	steps := []struct {
		next       string
		wantActive string
	}{
		{"", id(1)},
		{"", id(2)},
		{"", id(0)}, // wraps
		{id(2), id(2)},
		{id(2), id(2)}, // explicit next may be the current participant
		{"", id(0)},
	}
	for i, step := range steps {
		b, err := s.Switch(ctx, c.ID, session.SwitchArgs{NextParticipantID: step.next})
		if err != nil {
			t.Fatal(err)
		}
		st := decode[State](t, b)
		if *st.ActiveParticipantID != step.wantActive {
			t.Fatalf("step %d: active %s, want %s", i, *st.ActiveParticipantID, step.wantActive)
		}
		active := 0
		for _, p := range st.Participants {
			if p.IsActive {
				active++
				if p.ParticipantID != step.wantActive {
					t.Errorf("step %d: %s is_active", i, p.ParticipantID)
				}
			}
		}
		if active != 1 {
			t.Errorf("step %d: %d active participants", i, active)
		}
	}
	st := getState(t, s, c.ID)
	for i, want := range []int64{2, 1, 3} {
		if st.Participants[i].CycleCount != want {
			t.Errorf("participant %d cycle_count = %d, want %d", i, st.Participants[i].CycleCount, want)
		}
	}
}

func getState(t testing.TB, s *Engine, id string) State {
	t.Helper()
	b, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return decode[State](t, b)
}

func TestIncrementOnlyWhenNotExpired(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	const incr = 1000
	for _, tc := range []struct {
		name    string
		bank    int64
		expired bool
	}{
		{"in time", 60000, false},
		{"ran out", 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(t, session.ModePerParticipant, 2, tc.bank)
			c.IncrementMS = ptr[int64](incr)
			mustCreate(t, s, c)
			b, err := s.Start(ctx, c.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			st0 := decode[State](t, b)
			k := keyspace.For(c.ID)
			mark := streamMark(t, rdb, k.Stream)
			time.Sleep(20 * time.Millisecond)
			b, err = s.Switch(ctx, c.ID, session.SwitchArgs{CurrentParticipantID: c.Participants[0].ID})
			if err != nil {
				t.Fatal(err)
			}
			st := decode[State](t, b)
			p := st.Participants[0]
			// a clock that ran out stops at 0: the turn is charged up to there
			elapsed := min(st.ServerTimeMS-ms(st0.CycleStartedAt), tc.bank)
			if p.TimeUsedMS != elapsed {
				t.Errorf("time_used_ms %d, elapsed %d", p.TimeUsedMS, elapsed)
			}
			if p.HasExpired != tc.expired {
				t.Fatalf("has_expired = %v: %s", p.HasExpired, b)
			}
			evs := eventsSince(t, rdb, k.Stream, mark, c.ID)
			if len(evs) != 1 {
				t.Fatalf("%d events", len(evs))
			}
			ev := evs[0].Values
			if tc.expired {
				if p.TotalTimeMS != 0 || p.TimeRemainingMS != 0 {
					t.Errorf("expired participant got an increment: %+v", p)
				}
				if st.ExpiredParticipantID == nil || *st.ExpiredParticipantID != p.ParticipantID {
					t.Errorf("expired_participant_id = %v", st.ExpiredParticipantID)
				}
				if ev["type"] != "participant_expired" || ev["time_remaining_ms"] != "0" {
					t.Errorf("event %v", ev)
				}
			} else {
				if p.TotalTimeMS != tc.bank-elapsed+incr || p.TimeRemainingMS != p.TotalTimeMS {
					t.Errorf("total_time_ms %d, want %d", p.TotalTimeMS, tc.bank-elapsed+incr)
				}
				if st.ExpiredParticipantID != nil {
					t.Errorf("expired_participant_id = %v", *st.ExpiredParticipantID)
				}
				if ev["type"] != "cycle_switched" || ev["time_remaining_ms"] != strconv.FormatInt(p.TotalTimeMS, 10) {
					t.Errorf("event %v", ev)
				}
			}
			// the session goes on: the next participant is active
			if st.Status != "running" || !st.Participants[1].IsActive {
				t.Errorf("after the switch: %s", b)
			}
		})
	}
}

func TestPauseResumeArithmetic(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	ctx := context.Background()
	c, st0 := running(t, s, session.ModePerParticipant, 2, 60000)
	time.Sleep(20 * time.Millisecond)
	b, err := s.Pause(ctx, c.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	paused := decode[State](t, b)
	firstLeg := paused.ServerTimeMS - ms(st0.CycleStartedAt)
	p := paused.Participants[0]
	if paused.Status != "paused" || paused.CycleStartedAt != nil || !p.IsActive || *paused.ActiveParticipantID != p.ParticipantID {
		t.Errorf("pause: %s", b)
	}
	if p.TimeUsedMS != firstLeg || p.TotalTimeMS != 60000-firstLeg || p.CycleCount != 0 {
		t.Errorf("pause charged %+v, want %d", p, firstLeg)
	}
	time.Sleep(30 * time.Millisecond) // paused time is free
	b, err = s.Resume(ctx, c.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	resumed := decode[State](t, b)
	if resumed.Status != "running" || ms(resumed.CycleStartedAt) != resumed.ServerTimeMS || resumed.Participants[0].TimeUsedMS != firstLeg {
		t.Errorf("resume: %s", b)
	}
	time.Sleep(10 * time.Millisecond)
	b, err = s.Switch(ctx, c.ID, session.SwitchArgs{ExpectedVersion: 4})
	if err != nil {
		t.Fatal(err)
	}
	st := decode[State](t, b)
	secondLeg := st.ServerTimeMS - resumed.ServerTimeMS
	if got := st.Participants[0].TimeUsedMS; got != firstLeg+secondLeg {
		t.Errorf("time_used_ms = %d, want %d + %d", got, firstLeg, secondLeg)
	}
	if wall := st.ServerTimeMS - ms(st0.CycleStartedAt); st.Participants[0].TimeUsedMS > wall-30+tolMS {
		t.Errorf("time_used_ms %d includes the paused 30 ms (wall %d)", st.Participants[0].TimeUsedMS, wall)
	}
}

// TestErrors checks every error code, its details, and that the failing
// script wrote nothing: same version, nothing published, no audit event.
func TestErrors(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	type op func(id string, c *session.Config) error
	state := func(b []byte, err error) error { return err }
	start := func(v int64) op {
		return func(id string, _ *session.Config) error { return state(s.Start(ctx, id, v)) }
	}
	pause := func(v int64) op {
		return func(id string, _ *session.Config) error { return state(s.Pause(ctx, id, v)) }
	}
	resume := func(v int64) op {
		return func(id string, _ *session.Config) error { return state(s.Resume(ctx, id, v)) }
	}
	complete := func(v int64) op {
		return func(id string, _ *session.Config) error { return state(s.Complete(ctx, id, v)) }
	}
	switchOp := func(a session.SwitchArgs) op {
		return func(id string, _ *session.Config) error { return state(s.Switch(ctx, id, a)) }
	}
	del := func(v int64) op {
		return func(id string, _ *session.Config) error { _, err := s.Delete(ctx, id, v); return err }
	}
	unknown := uuid.NewString()
	cases := []struct {
		name   string
		status string // "" = no session
		op     op
		want   *session.Error
		detail map[string]any // subset of the details; "$id" = session id, "$p0" = first participant
	}{
		{"get absent", "", func(id string, _ *session.Config) error { _, err := s.Get(ctx, id); return err },
			session.ErrSessionNotFound, map[string]any{"session_id": "$id"}},
		{"start absent", "", start(0), session.ErrSessionNotFound, map[string]any{"session_id": "$id"}},
		{"switch absent", "", switchOp(session.SwitchArgs{}), session.ErrSessionNotFound, map[string]any{"session_id": "$id"}},
		{"pause absent", "", pause(0), session.ErrSessionNotFound, nil},
		{"resume absent", "", resume(0), session.ErrSessionNotFound, nil},
		{"complete absent", "", complete(0), session.ErrSessionNotFound, nil},
		{"create twice", "pending", func(id string, c *session.Config) error { return state(s.Create(ctx, c)) },
			session.ErrSessionExists, map[string]any{"session_id": "$id"}},
		{"start running", "running", start(0), session.ErrInvalidTransition,
			map[string]any{"from": "running", "to": "running", "version": 2.0}},
		{"start completed", "completed", start(0), session.ErrInvalidTransition, map[string]any{"from": "completed", "to": "running"}},
		{"switch pending", "pending", switchOp(session.SwitchArgs{}), session.ErrInvalidTransition,
			map[string]any{"from": "pending", "to": "running", "version": 1.0}},
		{"switch paused", "paused", switchOp(session.SwitchArgs{}), session.ErrInvalidTransition, map[string]any{"from": "paused", "to": "running"}},
		{"pause pending", "pending", pause(0), session.ErrInvalidTransition, map[string]any{"from": "pending", "to": "paused"}},
		{"pause paused", "paused", pause(0), session.ErrInvalidTransition, map[string]any{"from": "paused", "to": "paused"}},
		{"resume running", "running", resume(0), session.ErrInvalidTransition, map[string]any{"from": "running", "to": "running"}},
		{"resume pending", "pending", resume(0), session.ErrInvalidTransition, map[string]any{"from": "pending", "to": "running"}},
		{"complete completed", "completed", complete(0), session.ErrInvalidTransition,
			map[string]any{"from": "completed", "to": "completed"}},
		{"unknown next", "running", switchOp(session.SwitchArgs{NextParticipantID: unknown}), session.ErrParticipantNotFound,
			map[string]any{"participant_id": unknown}},
		{"stale start", "pending", start(7), session.ErrConflict, map[string]any{"expected_version": 7.0, "actual_version": 1.0}},
		{"stale switch", "running", switchOp(session.SwitchArgs{ExpectedVersion: 1}), session.ErrConflict,
			map[string]any{"expected_version": 1.0, "actual_version": 2.0}},
		{"stale pause", "running", pause(3), session.ErrConflict, map[string]any{"expected_version": 3.0, "actual_version": 2.0}},
		{"stale resume", "paused", resume(2), session.ErrConflict, map[string]any{"expected_version": 2.0, "actual_version": 3.0}},
		{"stale complete", "running", complete(1), session.ErrConflict, map[string]any{"expected_version": 1.0}},
		{"stale delete", "running", del(1), session.ErrConflict, map[string]any{"expected_version": 1.0, "actual_version": 2.0}},
		{"not my turn", "running", switchOp(session.SwitchArgs{ExpectedVersion: 2, CurrentParticipantID: unknown}), session.ErrConflict,
			map[string]any{"expected_participant_id": unknown, "active_participant_id": "$p0", "actual_version": 2.0}},
		{"version checked before next", "running", switchOp(session.SwitchArgs{ExpectedVersion: 9, NextParticipantID: unknown}),
			session.ErrConflict, map[string]any{"expected_version": 9.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newConfig(t, session.ModePerParticipant, 3, 60000)
			c.IncrementMS = ptr[int64](100)
			if tc.status != "" {
				mustCreate(t, s, c)
			}
			steps := map[string][]func() ([]byte, error){
				"running":   {func() ([]byte, error) { return s.Start(ctx, c.ID, 0) }},
				"paused":    {func() ([]byte, error) { return s.Start(ctx, c.ID, 0) }, func() ([]byte, error) { return s.Pause(ctx, c.ID, 0) }},
				"completed": {func() ([]byte, error) { return s.Complete(ctx, c.ID, 0) }},
			}
			for _, f := range steps[tc.status] {
				if _, err := f(); err != nil {
					t.Fatal(err)
				}
			}
			var before []byte
			if tc.status != "" {
				before, _ = s.Get(ctx, c.ID)
			}
			k := keyspace.For(c.ID)
			w := watch(t, rdb, c.ID)
			mark := streamMark(t, rdb, k.Stream)

			err := tc.op(c.ID, c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want.Code)
			}
			for _, other := range []error{session.ErrSessionNotFound, session.ErrSessionExists, session.ErrInvalidTransition,
				session.ErrParticipantNotFound, session.ErrConflict, session.ErrValidation, session.ErrStreamFull} {
				if other != error(tc.want) && errors.Is(err, other) {
					t.Errorf("%v also matches %v", err, other)
				}
			}
			_, details := errDetails(t, err)
			for key, want := range tc.detail {
				switch want {
				case "$id":
					want = c.ID
				case "$p0":
					want = c.Participants[0].ID
				}
				if details[key] != want {
					t.Errorf("details[%s] = %v, want %v (%v)", key, details[key], want, err)
				}
			}
			// nothing written
			if tc.status != "" {
				after, _ := s.Get(ctx, c.ID)
				if maskServerTime(after) != maskServerTime(before) {
					t.Errorf("state changed:\n%s\n%s", before, after)
				}
			} else if n, _ := rdb.Exists(ctx, k.Meta, k.Parts, k.Index).Result(); n != 0 {
				t.Errorf("%d keys created", n)
			}
			if msgs := w.drain(t); len(msgs) != 0 {
				t.Errorf("published %s", msgs)
			}
			if evs := eventsSince(t, rdb, k.Stream, mark, c.ID); len(evs) != 0 {
				t.Errorf("appended %v", evs)
			}
		})
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		edit  func(c *session.Config)
		field string
	}{
		{"bad session id", func(c *session.Config) { c.ID = "not-a-uuid" }, "session_id"},
		{"bad mode", func(c *session.Config) { c.SyncMode = "sudden_death" }, "sync_mode"},
		{"no participants", func(c *session.Config) { c.Participants = nil }, "participants"},
		{"bad participant id", func(c *session.Config) { c.Participants[1].ID = "bob" }, "participants"},
		{"duplicate participant", func(c *session.Config) { c.Participants[1].ID = c.Participants[0].ID }, "participants"},
		{"bad group id", func(c *session.Config) { c.Participants[0].GroupID = "team-a" }, "participants"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(t, session.ModePerParticipant, 2, 1000)
			tc.edit(c)
			_, err := s.Create(ctx, c)
			if !errors.Is(err, session.ErrValidation) {
				t.Fatalf("err = %v", err)
			}
			if _, d := errDetails(t, err); d["field"] != tc.field || d["message"] == "" {
				t.Errorf("details = %v", d)
			}
			k := keyspace.For(c.ID)
			if n, _ := rdb.Exists(ctx, k.Meta, k.Parts, k.Index).Result(); n != 0 {
				t.Errorf("%d keys written", n)
			}
		})
	}
}

// TestSyncModesBasicFlow runs every mode through its whole life. Mode
// semantics come later; here each mode is accepted, round-trips and flows.
func TestSyncModesBasicFlow(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	ctx := context.Background()
	for _, mode := range session.Modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := newConfig(t, mode, 3, 60000)
			g := uuid.NewString()
			for i := range c.Participants {
				c.Participants[i].GroupID = g
			}
			c.TimePerCycleMS = ptr[int64](10000)
			ops := []struct {
				status string
				f      func(v int64) ([]byte, error)
			}{
				{"pending", func(int64) ([]byte, error) { return s.Create(ctx, c) }},
				{"running", func(v int64) ([]byte, error) { return s.Start(ctx, c.ID, v) }},
				{"running", func(v int64) ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{ExpectedVersion: v}) }},
				{"paused", func(v int64) ([]byte, error) { return s.Pause(ctx, c.ID, v) }},
				{"running", func(v int64) ([]byte, error) { return s.Resume(ctx, c.ID, v) }},
				{"running", func(v int64) ([]byte, error) {
					return s.Switch(ctx, c.ID, session.SwitchArgs{ExpectedVersion: v, NextParticipantID: c.Participants[0].ID})
				}},
				{"completed", func(v int64) ([]byte, error) { return s.Complete(ctx, c.ID, v) }},
			}
			for i, o := range ops {
				b, err := o.f(int64(i))
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				st := decode[State](t, b)
				if st.SyncMode != mode || st.Status != o.status || st.Version != int64(i+1) || *st.TimePerCycleMS != 10000 {
					t.Fatalf("op %d: %s", i, b)
				}
				if *st.Participants[2].GroupID != g {
					t.Errorf("group_id lost: %s", b)
				}
			}
			if ok, err := s.Delete(ctx, c.ID, 7); !ok || err != nil {
				t.Errorf("delete: %v %v", ok, err)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c, st := running(t, s, session.ModePerParticipant, 2, 60000)
	k := keyspace.For(c.ID)
	w := watch(t, rdb, c.ID)
	mark := streamMark(t, rdb, k.Stream)
	ok, err := s.Delete(ctx, c.ID, st.Version)
	if err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if n, _ := rdb.Exists(ctx, k.Meta, k.Parts, k.Index).Result(); n != 0 {
		t.Errorf("%d keys left", n)
	}
	msgs := w.drain(t)
	if len(msgs) != 1 {
		t.Fatalf("published %d messages", len(msgs))
	}
	e := decode[envelope](t, msgs[0])
	if e.Type != "SESSION_DELETED" || e.SessionID != c.ID || e.Version != st.Version+1 || e.Timestamp < st.ServerTimeMS {
		t.Errorf("published %s", msgs[0])
	}
	evs := eventsSince(t, rdb, k.Stream, mark, c.ID)
	if len(evs) != 1 || evs[0].Values["type"] != "session_deleted" || evs[0].Values["version"] != strconv.FormatInt(st.Version+1, 10) {
		t.Errorf("events %v", evs)
	}
	// idempotent: no error, nothing announced, nothing recorded
	mark = streamMark(t, rdb, k.Stream)
	for _, v := range []int64{0, 5} {
		if ok, err := s.Delete(ctx, c.ID, v); ok || err != nil {
			t.Errorf("second delete: %v %v", ok, err)
		}
	}
	if msgs := w.drain(t); len(msgs) != 0 {
		t.Errorf("second delete published %s", msgs)
	}
	if evs := eventsSince(t, rdb, k.Stream, mark, c.ID); len(evs) != 0 {
		t.Errorf("second delete appended %v", evs)
	}
	if _, err := s.Get(ctx, c.ID); !errors.Is(err, session.ErrSessionNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	// the id can be used again
	if _, err := s.Create(ctx, c); err != nil {
		t.Errorf("create after delete: %v", err)
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 60000)
	k := keyspace.For(c.ID)
	ttls := func(step string, lo, hi time.Duration) {
		t.Helper()
		for _, key := range []string{k.Meta, k.Parts, k.Index} {
			d, err := rdb.PTTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if d < lo || d > hi {
				t.Errorf("%s: PTTL %s = %v, want in [%v, %v]", step, key, d, lo, hi)
			}
		}
	}
	const none = -time.Nanosecond // go-redis reports "no TTL" as -1ns
	steps := []struct {
		name   string
		f      func() ([]byte, error)
		lo, hi time.Duration
	}{
		{"pending", func() ([]byte, error) { return s.Create(ctx, c) }, 24*time.Hour - time.Minute, 24 * time.Hour},
		{"running", func() ([]byte, error) { return s.Start(ctx, c.ID, 0) }, none, none},
		{"switched", func() ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{}) }, none, none},
		{"paused", func() ([]byte, error) { return s.Pause(ctx, c.ID, 0) }, none, none},
		{"resumed", func() ([]byte, error) { return s.Resume(ctx, c.ID, 0) }, none, none},
		{"completed", func() ([]byte, error) { return s.Complete(ctx, c.ID, 0) }, time.Hour - time.Minute, time.Hour},
	}
	for _, st := range steps {
		if _, err := st.f(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		ttls(st.name, st.lo, st.hi)
	}
	// a pending session completed straight away also lives 1 h
	c2 := newConfig(t, session.ModePerParticipant, 1, 1000)
	mustCreate(t, s, c2)
	if _, err := s.Complete(ctx, c2.ID, 0); err != nil {
		t.Fatal(err)
	}
	k = keyspace.For(c2.ID)
	ttls("pending->completed", time.Hour-time.Minute, time.Hour)
}

// TestPublishedIsReply checks, for every transition of a small session,
// that the published message renders as a STATE_UPDATE carrying exactly
// the reply's bytes.
func TestPublishedIsReply(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModeGlobal, 32, 60000) // the largest "full" session
	w := watch(t, rdb, c.ID)
	ops := []func() ([]byte, error){
		func() ([]byte, error) { return s.Create(ctx, c) },
		func() ([]byte, error) { return s.Start(ctx, c.ID, 0) },
		func() ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{}) },
		func() ([]byte, error) { return s.Pause(ctx, c.ID, 0) },
		func() ([]byte, error) { return s.Resume(ctx, c.ID, 0) },
		func() ([]byte, error) { return s.Complete(ctx, c.ID, 0) },
	}
	for i, op := range ops {
		b, err := op()
		if err != nil {
			t.Fatal(err)
		}
		msgs := w.drain(t)
		if len(msgs) != 1 {
			t.Fatalf("op %d published %d messages", i, len(msgs))
		}
		st := decode[State](t, b)
		e := decode[envelope](t, msgs[0])
		if e.Type != "STATE_UPDATE" || e.Version != st.Version || e.Timestamp != st.ServerTimeMS || string(e.State) != string(b) {
			t.Errorf("op %d published %.200s\nreply %.200s", i, msgs[0], b)
		}
	}
}

// TestLargeSession checks sessions above the full-state limit: they publish
// small STATE_DELTAs, while every reply is still the full state, identical
// to what getSession reads, and a relay can rebuild it from the deltas.
func TestLargeSession(t *testing.T) {
	t.Parallel()
	for _, n := range []int{33, 100, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			s, rdb := newTestScripts(t)
			ctx := context.Background()
			c := newConfig(t, session.ModePerParticipant, n, 60000)
			c.IncrementMS = ptr[int64](500)
			w := watch(t, rdb, c.ID)
			// relay: its own assembler fed only by what was published
			relay := fullstate.New(s.Parts, 10)
			// cold: a wrapper with an empty cache must fetch to answer
			cold := New(rdb, Options{EventCap: testEventCap, StateCacheMax: 10})
			ops := []struct {
				s *Engine
				f func(s *Engine) ([]byte, error)
			}{
				{s, func(s *Engine) ([]byte, error) { return s.Create(ctx, c) }},
				{s, func(s *Engine) ([]byte, error) { return s.Start(ctx, c.ID, 0) }},
				{s, func(s *Engine) ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{}) }},
				{cold, func(s *Engine) ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{}) }},
				{s, func(s *Engine) ([]byte, error) { // s missed a version: it must refetch
					return s.Switch(ctx, c.ID, session.SwitchArgs{NextParticipantID: c.Participants[n-1].ID})
				}},
				{s, func(s *Engine) ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{}) }}, // wraps
				{s, func(s *Engine) ([]byte, error) { return s.Pause(ctx, c.ID, 0) }},
				{s, func(s *Engine) ([]byte, error) { return s.Resume(ctx, c.ID, 0) }},
				{s, func(s *Engine) ([]byte, error) { return s.Complete(ctx, c.ID, 0) }},
			}
			for i, o := range ops {
				b, err := o.f(o.s)
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
				got, err := s.Get(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				if maskServerTime(b) != maskServerTime(got) {
					t.Fatalf("op %d: reply differs from getSession", i)
				}
				st := decode[State](t, b)
				if len(st.Participants) != n || st.Version != int64(i+1) {
					t.Fatalf("op %d: %d participants, version %d", i, len(st.Participants), st.Version)
				}
				msgs := w.drain(t)
				if len(msgs) != 1 {
					t.Fatalf("op %d published %d messages", i, len(msgs))
				}
				d, err := fullstate.Decode(msgs[0])
				if err != nil {
					t.Fatalf("op %d: %v: %.300s", i, err, msgs[0])
				}
				base := int64(i)
				if i == 0 {
					base = 0
				}
				if d.SessionID != c.ID || d.Version != int64(i+1) || d.BaseVersion != base || d.Count != n ||
					d.Timestamp != st.ServerTimeMS || !hasPrefix(msgs[0], `{"type":"STATE_DELTA",`) {
					t.Errorf("op %d: delta header %+v", i, d)
				}
				if i > 0 && len(msgs[0]) > 1500 {
					t.Errorf("op %d published %d bytes at %d participants", i, len(msgs[0]), n)
				}
				if i > 0 && len(d.Positions) > 2 {
					t.Errorf("op %d: delta carries %d participants", i, len(d.Positions))
				}
				full, err := relay.Apply(ctx, d)
				if err != nil {
					t.Fatal(err)
				}
				if string(full) != string(b) {
					t.Fatalf("op %d: relay rebuilt a different state", i)
				}
			}
		})
	}
}

// TestStreamEvents checks the audit entry of every transition.
func TestStreamEvents(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 60000)
	g := uuid.NewString()
	c.Participants[0].GroupID = g
	k := keyspace.For(c.ID)
	mark := streamMark(t, rdb, k.Stream)
	p0, p1 := c.Participants[0].ID, c.Participants[1].ID
	type want struct{ typ, pid, gid, cycle string }
	ops := []struct {
		f func() ([]byte, error)
		w want
	}{
		{func() ([]byte, error) { return s.Create(ctx, c) }, want{"session_created", "", "", ""}},
		{func() ([]byte, error) { return s.Start(ctx, c.ID, 0) }, want{"session_started", p0, g, "0"}},
		{func() ([]byte, error) { return s.Switch(ctx, c.ID, session.SwitchArgs{}) }, want{"cycle_switched", p0, g, "1"}},
		{func() ([]byte, error) { return s.Pause(ctx, c.ID, 0) }, want{"session_paused", p1, "", "0"}},
		{func() ([]byte, error) { return s.Resume(ctx, c.ID, 0) }, want{"session_resumed", p1, "", "0"}},
		{func() ([]byte, error) { return s.Complete(ctx, c.ID, 0) }, want{"session_completed", p1, "", "0"}},
	}
	var replies [][]byte
	for _, o := range ops {
		b, err := o.f()
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, b)
	}
	evs := eventsSince(t, rdb, k.Stream, mark, c.ID)
	if len(evs) != len(ops) {
		t.Fatalf("%d events for %d transitions", len(evs), len(ops))
	}
	fields := []string{"type", "session_id", "version", "life", "participant_id", "group_id", "time_remaining_ms",
		"time_elapsed_ms", "cycle_number", "timestamp", "state_kind", "state", "actor"}
	for i, ev := range evs {
		v := ev.Values
		if len(v) != len(fields) {
			t.Errorf("event %d has fields %v", i, v)
		}
		for _, f := range fields {
			if _, ok := v[f]; !ok {
				t.Errorf("event %d lacks %s", i, f)
			}
		}
		st := decode[State](t, replies[i])
		w := ops[i].w
		if v["type"] != w.typ || v["version"] != strconv.Itoa(i+1) || v["participant_id"] != w.pid ||
			v["group_id"] != w.gid || v["cycle_number"] != w.cycle || v["state_kind"] != "full" ||
			v["timestamp"] != strconv.FormatInt(st.ServerTimeMS, 10) || v["state"] != string(replies[i]) {
			t.Errorf("event %d = %v", i, v)
		}
		if w.pid != "" {
			var p Participant
			for _, q := range st.Participants {
				if q.ParticipantID == w.pid {
					p = q
				}
			}
			if v["time_remaining_ms"] != strconv.FormatInt(p.TimeRemainingMS, 10) {
				t.Errorf("event %d time_remaining_ms = %v, want %d", i, v["time_remaining_ms"], p.TimeRemainingMS)
			}
		}
	}
	// the switch and pause record the elapsed turn
	sw := decode[State](t, replies[2])
	if v := evs[2].Values["time_elapsed_ms"]; v != strconv.FormatInt(sw.Participants[0].TimeUsedMS, 10) {
		t.Errorf("switch time_elapsed_ms = %v, want %d", v, sw.Participants[0].TimeUsedMS)
	}
}

// TestStreamFull runs the scripts raw against a private stream key that
// shares the session's hash tag, so no other test can change its length.
func TestStreamFull(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 60000)
	k := keyspace.For(c.ID)
	stream := "sk:" + keyspace.Tag(keyspace.ShardOf(c.ID)) + ":test-events:" + c.ID
	t.Cleanup(func() { rdb.Del(context.Background(), stream) })
	keys := []string{k.Meta, k.Parts, k.Index, stream, k.Idem("")}
	args := []any{c.ID, k.StateChannel, "2", "per_participant", "", "", "", "", "0", "", "", "", "",
		c.Participants[0].ID, 0, 60000, "", c.Participants[1].ID, 1, 60000, ""}
	keys6 := []string{k.Meta, k.Parts, k.Index, stream, keyspace.Deadlines(keyspace.ShardOf(c.ID)) + s.dlSuffix, k.Idem("")}
	run := func(sc string, args ...any) error {
		if sc == "switchCycle5-8.lua" {
			return s.rdb.EvalSha(ctx, shaOf(sc), append(keys6, k.Budget(), k.Budget()), args...).Err()
		}
		if strings.HasSuffix(sc, "-6.lua") {
			return s.rdb.EvalSha(ctx, shaOf(sc), keys6, args...).Err()
		}
		return s.rdb.EvalSha(ctx, shaOf(sc), keys, args...).Err()
	}
	if err := s.rdb.EvalSha(ctx, shaOf("createSession4-6.lua"), append(keys, k.Lives), args...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := run("startSession4-6.lua", c.ID, k.StateChannel, "2", ""); err != nil {
		t.Fatal(err)
	}
	w := watch(t, rdb, c.ID)
	before, _ := s.Get(ctx, c.ID)
	for _, sc := range []string{"switchCycle5-8.lua", "pauseSession4-6.lua", "completeSession4-6.lua", "deleteSession2-5.lua"} {
		err := scriptErr(run(sc, c.ID, k.StateChannel, "2", "", "", ""), true)
		if !errors.Is(err, session.ErrStreamFull) {
			t.Fatalf("%s: %v", sc, err)
		}
		if _, d := errDetails(t, err); d["stream_max"] != 2.0 {
			t.Errorf("details %v", d)
		}
	}
	// a fresh create is refused too, before it writes anything
	c2 := newConfig(t, session.ModePerParticipant, 1, 1000)
	k2 := keyspace.For(c2.ID)
	err := scriptErr(s.rdb.EvalSha(ctx, shaOf("createSession4-6.lua"), []string{k2.Meta, k2.Parts, k2.Index, stream, k2.Idem(""), k2.Lives},
		c2.ID, k2.StateChannel, "2", "per_participant", "", "", "", "", "0", "", "", "", "", c2.Participants[0].ID, 0, 1000, "").Err(), true)
	if !errors.Is(err, session.ErrStreamFull) {
		t.Errorf("create: %v", err)
	}
	if n, _ := rdb.Exists(ctx, k2.Meta).Result(); n != 0 {
		t.Errorf("refused create wrote its session")
	}
	after, _ := s.Get(ctx, c.ID)
	if maskServerTime(before) != maskServerTime(after) {
		t.Errorf("refused transitions changed the state")
	}
	if msgs := w.drain(t); len(msgs) != 0 {
		t.Errorf("refused transitions published %d messages", len(msgs))
	}
	if n, _ := rdb.XLen(ctx, stream).Result(); n != 2 {
		t.Errorf("XLEN = %d, want 2", n)
	}
	// once the worker has trimmed, transitions go on
	rdb.XTrimMaxLen(ctx, stream, 1)
	if err := run("switchCycle5-8.lua", c.ID, k.StateChannel, "2", "", "", ""); err != nil {
		t.Errorf("after trim: %v", err)
	}
	// event_cap 0 records nothing
	if err := run("pauseSession4-6.lua", c.ID, k.StateChannel, "0", ""); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.XLen(ctx, stream).Result(); n != 2 {
		t.Errorf("XLEN = %d after a cap-0 pause, want 2", n)
	}
}

// shaOf returns the SHA1 the scripts are loaded under.
func shaOf(name string) string { return redis.NewScript(luaSource(name)).Hash() }

// luaSource is the text of a lua/ script, as the wrappers load it.
func luaSource(name string) string {
	src, ok := lua.Source(name)
	if !ok {
		panic("no script " + name)
	}
	return src
}

// TestConcurrentSwitchOneWinner: 200 clients switch one session with the
// same expected_version; exactly one wins, the others get CONFLICT.
func TestConcurrentSwitchOneWinner(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	ctx := context.Background()
	c, st := running(t, s, session.ModePerParticipant, 4, 60000)
	const clients = 200
	var (
		wg    sync.WaitGroup
		ready = make(chan struct{})
		errs  = make([]error, clients)
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			_, errs[i] = s.Switch(ctx, c.ID, session.SwitchArgs{ExpectedVersion: st.Version})
		}()
	}
	close(ready)
	wg.Wait()
	wins, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, session.ErrConflict):
			conflicts++
			if _, d := errDetails(t, err); d["expected_version"] != float64(st.Version) || d["actual_version"] != float64(st.Version+1) {
				t.Errorf("conflict details %v", d)
			}
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != clients-1 {
		t.Fatalf("%d wins, %d conflicts", wins, conflicts)
	}
	if got := getState(t, s, c.ID); got.Version != st.Version+1 || got.Participants[0].CycleCount != 1 {
		t.Errorf("after the race: version %d, cycle_count %d", got.Version, got.Participants[0].CycleCount)
	}
}

// TestPropertyRandomOps drives sessions with seeded random operation
// sequences and checks the invariants after every step:
//   - a success raises version by exactly 1, an error leaves the state as it was;
//   - the status follows the state machine, and the error code is the
//     one the machine predicts;
//   - running or paused: exactly one participant is_active, and it is
//     active_participant_id; pending or completed: none, and null;
//   - per participant, time_used_ms and cycle_count never go backwards,
//     time_remaining_ms = max(0, total_time_ms), has_expired = total <= 0
//     (once expired, always expired);
//   - time_used_ms + total_time_ms = initial bank + increments granted;
//   - server_time_ms never goes backwards.
func TestPropertyRandomOps(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			propertyRun(t, s, seed, 60)
		})
	}
}

func allExpired(st State) bool {
	for _, p := range st.Participants {
		if !p.HasExpired {
			return false
		}
	}
	return true
}

var expiredRe = regexp.MustCompile(`,"expired_participant_id":"[^"]*"`)

func propertyRun(t *testing.T, s *Engine, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 1 + rng.IntN(5)
	// small banks so that some turns run out; the model is per_participant's
	// (the other modes have their own tests in modes_test.go)
	c := newConfig(t, session.ModePerParticipant, n, int64(2+rng.IntN(30)))
	incr := int64(rng.IntN(3))
	if incr > 0 {
		c.IncrementMS = ptr(incr)
	}
	prev := mustCreate(t, s, c)
	prevRaw, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	bank := map[string]int64{}
	for _, p := range c.Participants {
		bank[p.ID] = p.TotalTimeMS
	}
	granted := map[string]int64{}
	allowed := map[string]map[string]bool{
		"start":    {"pending": true},
		"switch":   {"running": true},
		"pause":    {"running": true},
		"resume":   {"paused": true},
		"complete": {"pending": true, "running": true, "paused": true},
	}
	next := map[string]string{"start": "running", "switch": "running", "pause": "paused", "resume": "running", "complete": "completed"}
	ops := []string{"start", "switch", "switch", "switch", "switch", "pause", "resume", "complete", "get"}
	for step := 0; step < steps; step++ {
		op := ops[rng.IntN(len(ops))]
		if prev.Status == "completed" && rng.IntN(4) == 0 {
			op = "complete"
		}
		if step == steps/2 && (prev.Status == "completed" || prev.Status == "expired") {
			break
		}
		var (
			expected int64
			wantCode string
			a        session.SwitchArgs
		)
		switch rng.IntN(6) {
		case 0:
			expected = prev.Version + 1 - 2*int64(rng.IntN(2)) // future or stale
			if expected <= 0 {                                 // 0 means unset
				expected = prev.Version + 1
			}
			wantCode = session.ErrConflict.Code
		case 1, 2:
			expected = prev.Version
		}
		if op == "switch" {
			a.ExpectedVersion = expected
			if rng.IntN(3) == 0 {
				a.NextParticipantID = c.Participants[rng.IntN(n)].ID
			}
			if rng.IntN(3) == 0 && prev.ActiveParticipantID != nil {
				a.CurrentParticipantID = *prev.ActiveParticipantID
			}
		}
		if op != "get" && wantCode == "" && !allowed[op][prev.Status] {
			wantCode = session.ErrInvalidTransition.Code
		}
		if op == "switch" && wantCode == "" && a.NextParticipantID != "" && a.NextParticipantID != *prev.ActiveParticipantID {
			for _, p := range prev.Participants {
				if p.ParticipantID == a.NextParticipantID && p.HasExpired {
					wantCode = session.ErrValidation.Code // expired participants are out of the rotation
				}
			}
		}
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(4)) * time.Millisecond)
		}
		var b []byte
		switch op {
		case "get":
			b, err = s.Get(ctx, c.ID)
		case "start":
			b, err = s.Start(ctx, c.ID, expected)
		case "switch":
			b, err = s.Switch(ctx, c.ID, a)
		case "pause":
			b, err = s.Pause(ctx, c.ID, expected)
		case "resume":
			b, err = s.Resume(ctx, c.ID, expected)
		case "complete":
			b, err = s.Complete(ctx, c.ID, expected)
		}
		if op == "get" {
			wantCode = ""
		}
		if wantCode != "" {
			if code, _ := errDetails(t, err); code != wantCode {
				t.Fatalf("step %d %s from %s (v%d, expected %d): %v, want %s", step, op, prev.Status, prev.Version, expected, err, wantCode)
			}
			b, err = s.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if maskServerTime(b) != maskServerTime(prevRaw) {
				t.Fatalf("step %d: failed %s changed the state", step, op)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d %s from %s: %v", step, op, prev.Status, err)
		}
		st := decode[State](t, b)
		wantVersion, wantStatus := prev.Version+1, next[op]
		if op == "get" {
			wantVersion, wantStatus = prev.Version, prev.Status
		}
		if op == "switch" && allExpired(st) {
			wantStatus = "expired"
		}
		// a pause or complete that finds the running clock ran out applies
		// that expiry first, as its own version
		if (op == "pause" || op == "complete") && prev.Status == "running" {
			for i, p := range st.Participants {
				if p.HasExpired && !prev.Participants[i].HasExpired {
					wantVersion++
					break
				}
			}
		}
		if st.Version != wantVersion || st.Status != wantStatus {
			t.Fatalf("step %d %s: v%d %s, want v%d %s", step, op, st.Version, st.Status, wantVersion, wantStatus)
		}
		if st.ServerTimeMS < prev.ServerTimeMS {
			t.Errorf("step %d: server_time_ms went back %d -> %d", step, prev.ServerTimeMS, st.ServerTimeMS)
		}
		active := 0
		for _, p := range st.Participants {
			if p.IsActive {
				active++
				if st.ActiveParticipantID == nil || *st.ActiveParticipantID != p.ParticipantID {
					t.Errorf("step %d: %s is_active but active_participant_id = %v", step, p.ParticipantID, st.ActiveParticipantID)
				}
			}
		}
		switch st.Status {
		case "running", "paused":
			if active != 1 {
				t.Fatalf("step %d %s: %d active participants", step, st.Status, active)
			}
		default:
			if active != 0 || st.ActiveParticipantID != nil {
				t.Fatalf("step %d %s: %d active, active_participant_id %v", step, st.Status, active, st.ActiveParticipantID)
			}
		}
		for i, p := range st.Participants {
			q := prev.Participants[i]
			if p.ParticipantID != q.ParticipantID || p.TimeUsedMS < q.TimeUsedMS || p.CycleCount < q.CycleCount ||
				(q.HasExpired && !p.HasExpired) {
				t.Fatalf("step %d %s: participant %d went back: %+v -> %+v", step, op, i, q, p)
			}
			if op == "switch" && p.CycleCount == q.CycleCount+1 && !p.HasExpired {
				granted[p.ParticipantID] += incr
			}
			if p.TimeUsedMS+p.TotalTimeMS != bank[p.ParticipantID]+granted[p.ParticipantID] {
				t.Fatalf("step %d %s: participant %d used %d + total %d != bank %d + increments %d",
					step, op, i, p.TimeUsedMS, p.TotalTimeMS, bank[p.ParticipantID], granted[p.ParticipantID])
			}
			if p.TimeRemainingMS != max(0, p.TotalTimeMS) || p.HasExpired != (p.TotalTimeMS <= 0) {
				t.Fatalf("step %d: participant %d remaining %d total %d expired %v", step, i, p.TimeRemainingMS, p.TotalTimeMS, p.HasExpired)
			}
		}
		// the stored state is the reply, less the switch's expired_participant_id
		if prevRaw, err = s.Get(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		reply := expiredRe.ReplaceAllString(maskServerTime(b), "")
		if maskServerTime(prevRaw) != reply {
			t.Fatalf("step %d %s: reply and getSession differ:\n%s\n%s", step, op, reply, prevRaw)
		}
		prev = st
	}
}

// TestWrapperErrors covers what the wrapper does with replies and errors
// that are not script errors.
func TestWrapperErrors(t *testing.T) {
	t.Parallel()
	s, _ := newTestScripts(t)
	if s.Assembler() == nil || s.Assembler() != s.asm {
		t.Error("Assembler() is not the wrapper's cache")
	}
	// a call without a reply keeps its cause; a read is UNAVAILABLE, and a
	// transition OUTCOME_UNKNOWN (it may have been sent)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id := uuid.NewString()
	for _, c := range []struct {
		name string
		call func() error
		want *session.Error
	}{
		{"get", func() error { _, err := s.Get(ctx, id); return err }, session.ErrUnavailable},
		{"start", func() error { _, err := s.Start(ctx, id, 0); return err }, session.ErrOutcomeUnknown},
		{"delete", func() error { _, err := s.Delete(ctx, id, 0); return err }, session.ErrOutcomeUnknown},
	} {
		if err := c.call(); !errors.Is(err, context.Canceled) || !errors.Is(err, c.want) {
			t.Errorf("%s on a canceled context: %v, want %s wrapping the cause", c.name, err, c.want.Code)
		}
	}
	closed := redis.NewClient(&redis.Options{Addr: servertest.RedisAddr()})
	closed.Close()
	if err := New(closed, Options{}).Load(context.Background()); err == nil {
		t.Error("Load on a closed client succeeded")
	}
	// replies of an unexpected shape are errors, not panics
	for _, val := range []any{
		"full",
		[]any{"full"},
		[]any{"other", "{}"},
		[]any{"delta", "not json"},
		[]any{"delta", `{"sessionId":"x","session":{},"positions":[5],"participants":[{}],"participant_count":1}`},
	} {
		cmd := redis.NewCmd(context.Background())
		cmd.SetVal(val)
		if b, err := s.state(context.Background(), cmd, nil); err == nil {
			t.Errorf("reply %v decoded to %s", val, b)
		}
	}
	// an error reply that is not one of ours passes through as is
	if err := scriptErr(redis.Nil, true); err != redis.Nil {
		t.Errorf("scriptErr(redis.Nil) = %v", err)
	}
	if err := s.rdb.Eval(context.Background(), "return redis.error_reply('OOPS x')", nil).Err(); scriptErr(err, true) != err {
		t.Errorf("unknown code mapped: %v", scriptErr(err, true))
	}
}

// TestCreateValidationRaw sends create arguments the Go wrapper never
// produces, as another language might: numbers that are not plain
// integers and metadata that is not an object must not reach the state.
func TestCreateValidationRaw(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	cases := []struct {
		slot  int // ARGV index (1-based)
		value string
		field string
	}{
		{5, "12.5", "total_time_ms"},
		{5, "1e3", "total_time_ms"},
		{6, "abc", "time_per_cycle_ms"},
		{7, "0x10", "increment_ms"},
		{8, "1234567890123456", "max_time_ms"},
		{9, "true", "auto_advance"},
		{10, "[1,2]", "metadata"},
		{10, "{bad", "metadata"},
		{10, `{"a":1} x`, "metadata"},
		{15, "1.5", "participants"},
		{15, "-1", "participants"},
		{16, "60000.5", "participants"},
	}
	for _, tc := range cases {
		t.Run(tc.field+"="+tc.value, func(t *testing.T) {
			c := newConfig(t, session.ModePerParticipant, 1, 1000)
			k := keyspace.For(c.ID)
			args := []any{c.ID, k.StateChannel, "0", "per_participant", "", "", "", "", "0", "", "", "", "",
				c.Participants[0].ID, "0", "1000", ""}
			args[tc.slot-1] = tc.value
			err := scriptErr(s.rdb.EvalSha(ctx, shaOf("createSession4-6.lua"), []string{k.Meta, k.Parts, k.Index, k.Stream, k.Idem(""), k.Lives}, args...).Err(), true)
			if !errors.Is(err, session.ErrValidation) {
				t.Fatalf("err = %v", err)
			}
			if _, d := errDetails(t, err); d["field"] != tc.field {
				t.Errorf("details = %v", d)
			}
			if n, _ := rdb.Exists(ctx, k.Meta, k.Parts, k.Index).Result(); n != 0 {
				t.Errorf("%d keys written", n)
			}
		})
	}
	// through the wrapper, bad metadata bytes are refused the same way
	c := newConfig(t, session.ModePerParticipant, 1, 1000)
	c.Metadata = []byte(`"just a string"`)
	if _, err := s.Create(ctx, c); !errors.Is(err, session.ErrValidation) {
		t.Errorf("string metadata: %v", err)
	}
}
