package engine

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/fullstate"
	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/servertest"
	"github.com/synckairos/synckairos/session"
)

// Each mode's arithmetic over scripted sequences (README.md "Clock modes").
// Elapsed times come from the states' own Redis times, so the checks are
// exact (stricter than the plan's ±5 ms); an expiry charges exactly the
// turn's limit and never fires before its deadline.

// modeRun drives one session and remembers the last state.
type modeRun struct {
	t   *testing.T
	s   *Engine
	rdb *redis.Client
	c   *session.Config
	st  State
	msg *servertest.TimeWatch
}

func newModeRun(t *testing.T, c *session.Config) *modeRun {
	t.Helper()
	s, rdb := newTestScripts(t)
	r := &modeRun{t: t, s: s, rdb: rdb, c: c}
	r.msg = servertest.WatchTime(t, rdb, keyspace.For(c.ID).MsgChannel)
	r.st = mustCreate(t, s, c)
	return r
}

func (r *modeRun) do(op string, a ...session.SwitchArgs) State {
	r.t.Helper()
	ctx := context.Background()
	var b []byte
	var err error
	switch op {
	case "start":
		b, err = r.s.Start(ctx, r.c.ID, 0)
	case "pause":
		b, err = r.s.Pause(ctx, r.c.ID, 0)
	case "resume":
		b, err = r.s.Resume(ctx, r.c.ID, 0)
	case "complete":
		b, err = r.s.Complete(ctx, r.c.ID, 0)
	case "switch":
		var sa session.SwitchArgs
		if len(a) > 0 {
			sa = a[0]
		}
		b, err = r.s.Switch(ctx, r.c.ID, sa)
	}
	if err != nil {
		r.t.Fatalf("%s: %v", op, err)
	}
	r.st = decode[State](r.t, b)
	return r.st
}

// expire runs expireSession until it fires (the scheduler's job, done by
// hand) and returns the new state; it checks the firing was not early.
func (r *modeRun) expire() State {
	r.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fired, err := r.s.Expire(ctx, r.c.ID)
		if err != nil {
			r.t.Fatalf("expire: %v", err)
		}
		if fired {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no expiry fired: %+v", r.st)
		}
		time.Sleep(time.Millisecond)
	}
	b, err := r.s.Get(ctx, r.c.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	r.st = decode[State](r.t, b)
	return r.st
}

// noExpiry checks expireSession does nothing now.
func (r *modeRun) noExpiry() {
	r.t.Helper()
	if fired, err := r.s.Expire(context.Background(), r.c.ID); fired || err != nil {
		r.t.Fatalf("expire fired (%v, %v) with nothing due: %+v", fired, err, r.st)
	}
}

func (r *modeRun) deadline() (int64, bool) {
	score, err := r.rdb.ZScore(context.Background(), keyspace.Deadlines(keyspace.ShardOf(r.c.ID))+r.s.dlSuffix, r.c.ID).Result()
	if err == redis.Nil {
		return 0, false
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return int64(score), true
}

// firstTurn starts the session, lets the first turn run for d and ends it
// with op (a switch or a pause): the state after op and the turn's length by
// the scripts' clock (Redis TIME), not the test's.
func (r *modeRun) firstTurn(d time.Duration, op string) (State, int64) {
	r.t.Helper()
	st0 := r.do("start")
	time.Sleep(d)
	st1 := r.do(op)
	return st1, st1.ServerTimeMS - ms(st0.CycleStartedAt)
}

func (r *modeRun) p(i int) Participant { return r.st.Participants[i] }

func eq(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %d, want %d", what, got, want)
	}
}

func checkTimeExpired(t *testing.T, m servertest.TimeMsg, st State, pid *string) {
	t.Helper()
	if m.Type != "TIME_EXPIRED" || m.SessionID != st.SessionID || m.Version != st.Version ||
		(pid == nil) != (m.ParticipantID == nil) || (pid != nil && *pid != *m.ParticipantID) {
		t.Errorf("TIME_EXPIRED %+v, want participant %v at v%d", m, pid, st.Version)
	}
}

// checkFlags checks that exactly the participants at positions expired
// have expired, and that only the one at active is active.
func checkFlags(t *testing.T, st State, expired []int, active int) {
	t.Helper()
	for i, p := range st.Participants {
		want := slices.Contains(expired, i)
		if p.HasExpired != want || p.IsActive != (i == active) {
			t.Errorf("participant %d: expired %v active %v, want %v %v", i, p.HasExpired, p.IsActive, want, i == active)
		}
	}
}

func modeConfig(t *testing.T, mode string, banks ...int64) *session.Config {
	c := newConfig(t, mode, len(banks), 0)
	for i, b := range banks {
		c.Participants[i].TotalTimeMS = b
	}
	return c
}

func TestPerParticipantMode(t *testing.T) {
	t.Parallel()
	c := modeConfig(t, session.ModePerParticipant, 60000, 60000)
	c.IncrementMS = ptr[int64](1000)
	r := newModeRun(t, c)
	st0 := r.do("start")
	d, ok := r.deadline()
	if !ok {
		t.Fatal("running turn not in the deadline index")
	}
	eq(t, "deadline", d, ms(st0.CycleStartedAt)+60000)
	time.Sleep(15 * time.Millisecond)
	st1 := r.do("pause")
	e1 := st1.ServerTimeMS - ms(st0.CycleStartedAt)
	eq(t, "used after pause", r.p(0).TimeUsedMS, e1)
	if _, ok := r.deadline(); ok {
		t.Error("paused session still in the deadline index")
	}
	time.Sleep(10 * time.Millisecond) // paused: not charged
	st2 := r.do("resume")
	d, _ = r.deadline()
	eq(t, "deadline after resume", d, ms(st2.CycleStartedAt)+60000-e1)
	time.Sleep(15 * time.Millisecond)
	st3 := r.do("switch")
	e2 := st3.ServerTimeMS - ms(st2.CycleStartedAt)
	eq(t, "p0 used", r.p(0).TimeUsedMS, e1+e2)
	eq(t, "p0 bank (Fischer increment)", r.p(0).TotalTimeMS, 60000-e1-e2+1000)
	if !r.p(1).IsActive || r.p(0).HasExpired {
		t.Errorf("after switch: %+v", r.st)
	}
	time.Sleep(10 * time.Millisecond)
	st4 := r.do("complete")
	eq(t, "p1 used", r.p(1).TimeUsedMS, st4.ServerTimeMS-ms(st3.CycleStartedAt))
	if _, ok := r.deadline(); ok {
		t.Error("completed session still in the deadline index")
	}
	r.noExpiry()
}

// A time_per_cycle_ms cap ends a turn though the bank is not empty.
func TestPerParticipantTurnCap(t *testing.T) {
	t.Parallel()
	// the cap must outlast start -> pause and resume -> noExpiry even on
	// the embedded Redis, where a call under -race can take tens of ms
	const turnCap = 400
	c := modeConfig(t, session.ModePerParticipant, 60000, 60000)
	c.TimePerCycleMS = ptr[int64](turnCap)
	c.AutoAdvance = true
	r := newModeRun(t, c)
	_, e1 := r.firstTurn(10*time.Millisecond, "pause") // the cap counts the whole turn, across pauses
	str := r.do("resume")
	due := ms(str.CycleStartedAt) + turnCap - e1
	d, _ := r.deadline()
	eq(t, "deadline after resume", d, due)
	r.noExpiry()
	st := r.expire()
	p0 := r.p(0)
	eq(t, "p0 used (exactly the cap)", p0.TimeUsedMS, turnCap)
	eq(t, "p0 bank", p0.TotalTimeMS, 60000-turnCap)
	if !p0.HasExpired || p0.IsActive || !r.p(1).IsActive || st.Status != "running" || p0.CycleCount != 1 {
		t.Errorf("after the capped turn ran out: %+v", st)
	}
	msgs := r.msg.Wait(t, 1)
	checkTimeExpired(t, msgs[0], st, &p0.ParticipantID)
	if msgs[0].Timestamp < due {
		t.Errorf("fired at %d before the deadline %d", msgs[0].Timestamp, due)
	}
	// p1's fresh turn started when the expiry fired
	eq(t, "p1 turn start", ms(st.CycleStartedAt), msgs[0].Timestamp)
	d, _ = r.deadline()
	eq(t, "p1 deadline", d, ms(st.CycleStartedAt)+turnCap)
}

func TestPerCycleMode(t *testing.T) {
	t.Parallel()
	// auto_advance off: the clock stops at 0 and waits for a switch
	c := modeConfig(t, session.ModePerCycle, 60000, 60000)
	// The cap leaves room for a loaded machine (the embedded rerun under
	// -race): p0's 10 ms turn must end by switch, not by the cap.
	const turnCap = 250
	c.TimePerCycleMS = ptr[int64](turnCap)
	r := newModeRun(t, c)
	st1, e1 := r.firstTurn(10*time.Millisecond, "switch")
	eq(t, "p0 used", r.p(0).TimeUsedMS, e1)
	eq(t, "p0 overall budget", r.p(0).TotalTimeMS, 60000-e1)
	d, _ := r.deadline()
	eq(t, "p1 deadline: a fresh cap", d, ms(st1.CycleStartedAt)+turnCap)
	st := r.expire()
	p1 := r.p(1)
	eq(t, "p1 used", p1.TimeUsedMS, turnCap)
	if !p1.HasExpired || !p1.IsActive || st.Status != "running" || st.CycleStartedAt != nil {
		t.Fatalf("stopped clock: %+v", st)
	}
	if _, ok := r.deadline(); ok {
		t.Error("a stopped clock is still in the deadline index")
	}
	r.noExpiry() // a second run changes nothing
	checkTimeExpired(t, r.msg.Wait(t, 1)[0], st, &p1.ParticipantID)
	time.Sleep(10 * time.Millisecond) // stopped: not charged
	r.do("pause")
	r.do("resume")
	if r.st.CycleStartedAt != nil {
		t.Errorf("resume restarted an expired clock: %+v", r.st)
	}
	st = r.do("switch")
	if st.ExpiredParticipantID == nil || *st.ExpiredParticipantID != p1.ParticipantID {
		t.Errorf("switch after the expiry: expired_participant_id %v", st.ExpiredParticipantID)
	}
	eq(t, "p1 used after the stop", r.p(1).TimeUsedMS, turnCap)
	if !r.p(0).IsActive || r.p(1).CycleCount != 1 {
		t.Errorf("after switch: %+v", st)
	}
	// the rotation skips expired p1 now: p0 follows p0
	st2 := r.do("switch")
	if !r.p(0).IsActive || r.p(0).CycleCount != 2 {
		t.Errorf("rotation did not skip the expired participant: %+v", st2)
	}
}

func TestPerGroupMode(t *testing.T) {
	t.Parallel()
	c := modeConfig(t, session.ModePerGroup, 100, 100, 100)
	ga, gb := uuid.NewString(), uuid.NewString()
	c.Participants[0].GroupID, c.Participants[1].GroupID, c.Participants[2].GroupID = ga, gb, ga
	c.AutoAdvance = true
	r := newModeRun(t, c)
	if r.st.GroupRemainingMS[ga] != 100 || r.st.GroupRemainingMS[gb] != 100 {
		t.Fatalf("group banks %v", r.st.GroupRemainingMS)
	}
	st1, e1 := r.firstTurn(20*time.Millisecond, "switch") // p0 (A) -> p1 (B)
	eq(t, "group A bank", st1.GroupRemainingMS[ga], 100-e1)
	eq(t, "p0 shows its group's bank", r.p(0).TotalTimeMS, 100-e1)
	st2 := r.do("switch") // p1 (B) -> p2 (A)
	e2 := st2.ServerTimeMS - ms(st1.CycleStartedAt)
	eq(t, "group B bank", st2.GroupRemainingMS[gb], 100-e2)
	eq(t, "p2 starts on A's bank", r.p(2).TotalTimeMS, 100-e1)
	st := r.expire() // A runs out while p2 plays: p0 and p2 are out
	eq(t, "p2 used", r.p(2).TimeUsedMS, 100-e1)
	eq(t, "group A bank", st.GroupRemainingMS[ga], 0)
	if !r.p(0).HasExpired || !r.p(2).HasExpired || r.p(1).HasExpired || !r.p(1).IsActive || st.Status != "running" {
		t.Fatalf("group expiry: %+v", st)
	}
	checkTimeExpired(t, r.msg.Wait(t, 1)[0], st, &r.st.Participants[2].ParticipantID)
	st = r.expire() // then B runs out: nobody is left
	if st.Status != "expired" || st.ActiveParticipantID != nil || st.SessionCompletedAt == nil {
		t.Fatalf("all groups out: %+v", st)
	}
	checkTimeExpired(t, r.msg.Wait(t, 2)[1], st, &r.st.Participants[1].ParticipantID)
}

func TestGlobalMode(t *testing.T) {
	t.Parallel()
	c := modeConfig(t, session.ModeGlobal, 60000, 60000)
	c.TotalTimeMS = ptr[int64](80)
	r := newModeRun(t, c)
	st1, e1 := r.firstTurn(20*time.Millisecond, "switch")
	eq(t, "session bank", *st1.TimeRemainingMS, 80-e1)
	eq(t, "p0 used", r.p(0).TimeUsedMS, e1)
	eq(t, "p0 own bank untouched", r.p(0).TotalTimeMS, 60000)
	d, _ := r.deadline()
	eq(t, "deadline", d, ms(st1.CycleStartedAt)+80-e1)
	st := r.expire()
	if st.Status != "expired" || st.ActiveParticipantID != nil || *st.TimeRemainingMS != 0 || r.p(1).HasExpired {
		t.Fatalf("global bank out: %+v", st)
	}
	eq(t, "time used in all", r.p(0).TimeUsedMS+r.p(1).TimeUsedMS, 80)
	checkTimeExpired(t, r.msg.Wait(t, 1)[0], st, nil)
	if _, ok := r.deadline(); ok {
		t.Error("expired session still in the deadline index")
	}
	if _, err := r.s.Switch(context.Background(), c.ID, session.SwitchArgs{}); !errors.Is(err, session.ErrInvalidTransition) {
		t.Errorf("switch on an expired session: %v", err)
	}
}

func TestCountUpMode(t *testing.T) {
	t.Parallel()
	// max_time_ms must outlast the calls before resume even on the
	// embedded Redis (see TestPerParticipantTurnCap)
	const maxTime = 600
	c := modeConfig(t, session.ModeCountUp, 1000, 1000)
	c.MaxTimeMS = ptr[int64](maxTime)
	r := newModeRun(t, c)
	st1, e1 := r.firstTurn(15*time.Millisecond, "switch")
	eq(t, "p0 counted up", r.p(0).TimeUsedMS, e1)
	eq(t, "p0 total untouched (no bank)", r.p(0).TotalTimeMS, 1000)
	time.Sleep(10 * time.Millisecond)
	st2 := r.do("pause")
	e2 := st2.ServerTimeMS - ms(st1.CycleStartedAt)
	eq(t, "p1 counted up", r.p(1).TimeUsedMS, e2)
	st3 := r.do("resume")
	d, _ := r.deadline()
	eq(t, "deadline: max_time_ms of the whole session", d, ms(st3.CycleStartedAt)+maxTime-e1-e2)
	st := r.expire()
	if st.Status != "expired" || r.p(0).HasExpired || r.p(1).HasExpired {
		t.Fatalf("max_time_ms reached: %+v", st)
	}
	eq(t, "time counted in all", r.p(0).TimeUsedMS+r.p(1).TimeUsedMS, maxTime)
	checkTimeExpired(t, r.msg.Wait(t, 1)[0], st, nil)

	// without max_time_ms a stopwatch never expires
	c2 := modeConfig(t, session.ModeCountUp, 1000)
	r2 := newModeRun(t, c2)
	r2.do("start")
	if _, ok := r2.deadline(); ok {
		t.Error("an unbounded stopwatch has a deadline")
	}
	r2.noExpiry()
}

// TestAutoAdvance: with auto_advance, each expiry hands the turn on until
// nobody is left; without, the clock stops and the session waits.
func TestAutoAdvance(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{true, false} {
		name := "off"
		if auto {
			name = "on"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := modeConfig(t, session.ModePerParticipant, 30, 30, 30)
			c.AutoAdvance = auto
			r := newModeRun(t, c)
			r.do("start")
			st := r.expire()
			if !auto {
				if !r.p(0).IsActive || !r.p(0).HasExpired || st.CycleStartedAt != nil || st.Status != "running" {
					t.Fatalf("auto_advance off: %+v", st)
				}
				r.noExpiry()
				st = r.do("switch")
				if !r.p(1).IsActive || st.CycleStartedAt == nil {
					t.Fatalf("switch after the stop: %+v", st)
				}
				st = r.expire()
				st = r.do("switch") // p1 stopped -> p2
				st = r.expire()
				if st.Status != "running" || !r.p(2).IsActive {
					t.Fatalf("last participant stopped: %+v", st)
				}
				// a switch finds nobody left
				st = r.do("switch")
				if st.Status != "expired" {
					t.Fatalf("switch with everyone expired: %+v", st)
				}
				return
			}
			if !r.p(1).IsActive || !r.p(0).HasExpired || r.p(0).IsActive {
				t.Fatalf("auto_advance on, first expiry: %+v", st)
			}
			r.expire()
			st = r.expire()
			if st.Status != "expired" {
				t.Fatalf("everyone expired: %+v", st)
			}
			msgs := r.msg.Wait(t, 3)
			for i, m := range msgs {
				if m.ParticipantID == nil || *m.ParticipantID != r.p(i).ParticipantID || m.Version != int64(3+i) {
					t.Errorf("TIME_EXPIRED %d: %+v", i, m)
				}
			}
			for i := range 3 {
				eq(t, "used", r.p(i).TimeUsedMS, 30)
			}
		})
	}
}

// TestSwitchFirstToSeeExpiry: a switch that lands after the deadline but
// before any scheduler applies the expiry itself, announces it once, and
// leaves nothing due.
func TestSwitchFirstToSeeExpiry(t *testing.T) {
	t.Parallel()
	c := modeConfig(t, session.ModePerParticipant, 5, 60000)
	r := newModeRun(t, c)
	k := keyspace.For(c.ID)
	mark := streamMark(t, r.rdb, k.Stream)
	r.do("start")
	time.Sleep(20 * time.Millisecond)
	st := r.do("switch")
	p0 := r.p(0)
	if st.ExpiredParticipantID == nil || *st.ExpiredParticipantID != p0.ParticipantID || !p0.HasExpired || p0.TimeUsedMS != 5 {
		t.Fatalf("late switch: %+v", st)
	}
	r.noExpiry()
	checkTimeExpired(t, r.msg.Wait(t, 1)[0], st, &p0.ParticipantID)
	evs := eventsSince(t, r.rdb, k.Stream, mark, c.ID)
	if len(evs) != 2 || evs[1].Values["type"] != "participant_expired" {
		t.Errorf("events %v", evs)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(r.msg.Wait(t, 1)); n != 1 {
		t.Errorf("%d TIME_EXPIRED, want 1", n)
	}
}

// TestExpireLargeSession: above FULL_MAX the expiry publishes a STATE_DELTA
// of the two participants that changed, like a switch.
func TestExpireLargeSession(t *testing.T) {
	t.Parallel()
	banks := largeBanks()
	banks[0] = 10
	c := modeConfig(t, session.ModePerParticipant, banks...)
	c.AutoAdvance = true
	r := newModeRun(t, c)
	w := watch(t, r.rdb, c.ID)
	r.do("start")
	w.drain(t)
	st := r.expire()
	if !r.p(0).HasExpired || !r.p(1).IsActive || st.Version != 3 {
		t.Fatalf("after expiry: %+v", st)
	}
	msgs := w.drain(t)
	if len(msgs) != 1 {
		t.Fatalf("%d state messages", len(msgs))
	}
	var d struct {
		Type        string `json:"type"`
		Version     int64  `json:"version"`
		BaseVersion int64  `json:"base_version"`
		Positions   []int  `json:"positions"`
	}
	if err := json.Unmarshal(msgs[0], &d); err != nil {
		t.Fatal(err)
	}
	if d.Type != "STATE_DELTA" || d.Version != 3 || d.BaseVersion != 2 || len(d.Positions) != 2 || d.Positions[0] != 0 || d.Positions[1] != 1 {
		t.Errorf("delta %s", msgs[0])
	}
}

// TestWarnings: each warnings_ms threshold of a turn is announced once,
// when that much time is left, before the TIME_EXPIRED; a turn that
// starts below a threshold is not warned of it; pause keeps what was sent.
func TestWarnings(t *testing.T) {
	t.Parallel()
	// p0's 1.5 s turn gives each warning a band of 500 ms to be seen in,
	// so a poll delayed by a loaded machine still lands in the right one
	c := modeConfig(t, session.ModePerParticipant, 1500, 60000)
	c.AutoAdvance = true
	c.WarningsMS = []int64{1000, 500, 120000}
	r := newModeRun(t, c)
	var head struct {
		WarningsMS []int64 `json:"warnings_ms"`
	}
	b, _ := r.s.Get(context.Background(), c.ID)
	if err := json.Unmarshal(b, &head); err != nil || len(head.WarningsMS) != 3 || head.WarningsMS[0] != 120000 {
		t.Fatalf("warnings_ms in the state: %s", b)
	}
	st0 := r.do("start")
	due := ms(st0.CycleStartedAt) + 1500
	d, _ := r.deadline()
	eq(t, "index score: the 1000 ms warning", d, due-1000)
	time.Sleep(10 * time.Millisecond)
	r.do("pause")
	r.do("resume")
	st := r.expire() // runs through both warnings, then the expiry
	if !r.p(0).HasExpired || !r.p(1).IsActive {
		t.Fatalf("after expiry: %+v", st)
	}
	msgs := r.msg.Wait(t, 3)
	if msgs[0].Type != "TIME_WARNING" || msgs[1].Type != "TIME_WARNING" || msgs[2].Type != "TIME_EXPIRED" {
		t.Fatalf("messages %+v", msgs)
	}
	// a warning reports the time left when it fired: at or below its
	// threshold, above the next one down (which would have fired instead)
	for i, band := range [][2]int64{{1000, 500}, {500, 0}} {
		m := msgs[i]
		if m.ParticipantID == nil || *m.ParticipantID != r.p(0).ParticipantID || m.Version != 4 ||
			m.RemainingMS > band[0] || m.RemainingMS <= band[1] {
			t.Errorf("warning %d: %+v, want remaining_ms in (%d, %d]", i, m, band[1], band[0])
		}
	}
	// p1's 60 s turn starts below the 120 s threshold: not warned of it;
	// its index score is its 1000 ms warning
	d, _ = r.deadline()
	eq(t, "p1's index score: its 1000 ms warning", d, ms(st.CycleStartedAt)+60000-1000)
	time.Sleep(20 * time.Millisecond)
	if n := len(r.msg.Wait(t, 3)); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}

// TestLateTransitionAppliesExpiry: a pause or complete that lands after the
// running turn's deadline, before any scheduler applied it, first applies
// the expiry exactly as expireSession would (its own version and event,
// TIME_EXPIRED, auto_advance), then pauses or completes what is left.
func TestLateTransitionAppliesExpiry(t *testing.T) {
	t.Parallel()
	const none = -1
	cases := []struct {
		name, mode, op string
		auto           bool
		banks          []int64
		groups         []int  // per_group: each participant's group
		total          *int64 // global: the session's bank
		max            *int64 // max_time_ms
		// outcome
		status   string
		events   []string // after session_started, one per version
		expired  []int    // participants with has_expired
		active   int      // the active participant, or none
		announce int      // TIME_EXPIRED's participant, or none (null)
	}{
		{name: "per_participant pause auto_advance", mode: session.ModePerParticipant, op: "pause", auto: true,
			banks: []int64{30, 60000}, status: "paused", events: []string{"participant_expired", "session_paused"},
			expired: []int{0}, active: 1, announce: 0},
		{name: "per_participant pause stops", mode: session.ModePerParticipant, op: "pause",
			banks: []int64{30, 60000}, status: "paused", events: []string{"participant_expired", "session_paused"},
			expired: []int{0}, active: 0, announce: 0},
		{name: "per_participant pause nobody left", mode: session.ModePerParticipant, op: "pause", auto: true,
			banks: []int64{30}, status: "expired", events: []string{"session_expired"},
			expired: []int{0}, active: none, announce: 0},
		{name: "per_participant complete auto_advance", mode: session.ModePerParticipant, op: "complete", auto: true,
			banks: []int64{30, 60000}, status: "completed", events: []string{"participant_expired", "session_completed"},
			expired: []int{0}, active: none, announce: 0},
		{name: "per_participant complete stops", mode: session.ModePerParticipant, op: "complete",
			banks: []int64{30, 60000}, status: "completed", events: []string{"participant_expired", "session_completed"},
			expired: []int{0}, active: none, announce: 0},
		{name: "per_cycle pause auto_advance", mode: session.ModePerCycle, op: "pause", auto: true,
			banks: []int64{60000, 60000}, status: "paused", events: []string{"participant_expired", "session_paused"},
			expired: []int{0}, active: 1, announce: 0},
		{name: "per_group pause auto_advance", mode: session.ModePerGroup, op: "pause", auto: true,
			banks: []int64{30, 60000, 30}, groups: []int{0, 1, 0}, status: "paused",
			events: []string{"participant_expired", "session_paused"}, expired: []int{0, 2}, active: 1, announce: 0},
		{name: "per_group complete stops", mode: session.ModePerGroup, op: "complete",
			banks: []int64{30, 60000, 30}, groups: []int{0, 1, 0}, status: "completed",
			events: []string{"participant_expired", "session_completed"}, expired: []int{0, 2}, active: none, announce: 0},
		{name: "global pause", mode: session.ModeGlobal, op: "pause", total: ptr[int64](30),
			banks: []int64{60000, 60000}, status: "expired", events: []string{"session_expired"},
			active: none, announce: none},
		{name: "global complete auto_advance", mode: session.ModeGlobal, op: "complete", auto: true, total: ptr[int64](30),
			banks: []int64{60000, 60000}, status: "expired", events: []string{"session_expired"},
			active: none, announce: none},
		{name: "count_up pause max_time_ms", mode: session.ModeCountUp, op: "pause", max: ptr[int64](30),
			banks: []int64{1000, 1000}, status: "expired", events: []string{"session_expired"},
			active: none, announce: none},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := modeConfig(t, tc.mode, tc.banks...)
			c.AutoAdvance, c.TotalTimeMS, c.MaxTimeMS = tc.auto, tc.total, tc.max
			if tc.mode == session.ModePerCycle {
				c.TimePerCycleMS = ptr[int64](30)
			}
			if tc.groups != nil {
				gids := []string{uuid.NewString(), uuid.NewString()}
				for i, g := range tc.groups {
					c.Participants[i].GroupID = gids[g]
				}
			}
			r := newModeRun(t, c)
			k := keyspace.For(c.ID)
			r.do("start")
			mark := streamMark(t, r.rdb, k.Stream)
			w := watch(t, r.rdb, c.ID)
			time.Sleep(60 * time.Millisecond) // past the 30 ms deadline; no scheduler runs
			st := r.do(tc.op)

			wantVersion := int64(2 + len(tc.events))
			if st.Status != tc.status || st.Version != wantVersion {
				t.Fatalf("late %s: %s v%d, want %s v%d: %+v", tc.op, st.Status, st.Version, tc.status, wantVersion, st)
			}
			checkFlags(t, st, tc.expired, tc.active)
			// the turn that ran out is charged exactly up to its limit, and
			// a turn that auto_advance started was paused at once
			eq(t, "p0 used", r.p(0).TimeUsedMS, 30)
			for i := 1; i < len(st.Participants); i++ {
				eq(t, "later participant used", r.p(i).TimeUsedMS, 0)
			}
			if tc.mode == session.ModeGlobal {
				eq(t, "session bank", *st.TimeRemainingMS, 0)
			}
			if tc.status == "expired" && (st.ActiveParticipantID != nil || st.SessionCompletedAt == nil) {
				t.Errorf("expired session: %+v", st)
			}
			if st.CycleStartedAt != nil {
				t.Errorf("cycle_started_at %v after a late %s", st.CycleStartedAt, tc.op)
			}

			// one TIME_EXPIRED, at the expiry's version
			var who *string
			if tc.announce != none {
				who = &st.Participants[tc.announce].ParticipantID
			}
			m := r.msg.Wait(t, 1)[0]
			checkTimeExpired(t, m, State{SessionID: c.ID, Version: 3}, who)
			evs := eventsSince(t, r.rdb, k.Stream, mark, c.ID)
			var types []string
			for _, ev := range evs {
				types = append(types, ev.Values["type"].(string))
			}
			if strings.Join(types, ",") != strings.Join(tc.events, ",") {
				t.Errorf("events %v, want %v", types, tc.events)
			}
			if len(evs) > 0 && evs[0].Values["time_elapsed_ms"] != "30" {
				t.Errorf("expiry event time_elapsed_ms = %v, want 30", evs[0].Values["time_elapsed_ms"])
			}
			// a state message per version, in order
			msgs := w.drain(t)
			if len(msgs) != len(tc.events) {
				t.Fatalf("%d state messages, want %d", len(msgs), len(tc.events))
			}
			for i, b := range msgs {
				if e := decode[envelope](t, b); e.Type != "STATE_UPDATE" || e.Version != int64(3+i) {
					t.Errorf("state message %d: %s v%d", i, e.Type, e.Version)
				}
			}
			if _, ok := r.deadline(); ok {
				t.Error("still in the deadline index")
			}
			r.noExpiry()
			if n := len(r.msg.Wait(t, 1)); n != 1 {
				t.Errorf("%d TIME_EXPIRED, want 1", n)
			}
			if st.Status != "paused" {
				return
			}
			// resume: auto_advance's next participant runs; a stopped clock stays stopped
			st = r.do("resume")
			_, indexed := r.deadline()
			if tc.auto != (st.CycleStartedAt != nil) || tc.auto != indexed || st.Status != "running" {
				t.Errorf("resume: cycle_started_at %v, indexed %v: %+v", st.CycleStartedAt, indexed, st)
			}
		})
	}
}

// TestLatePauseLargeSession: above FULL_MAX a late pause publishes one
// delta per version, and replies with one delta from the version before
// both, so a client that had that version needs nothing else.
func TestLatePauseLargeSession(t *testing.T) {
	t.Parallel()
	banks := largeBanks()
	banks[0] = 30
	type delta struct {
		Type         string            `json:"type"`
		Version      int64             `json:"version"`
		BaseVersion  int64             `json:"base_version"`
		Positions    []int             `json:"positions"`
		Participants []json.RawMessage `json:"participants"`
	}
	for _, raw := range []bool{true, false} {
		t.Run(map[bool]string{true: "raw", false: "wrapper"}[raw], func(t *testing.T) {
			t.Parallel()
			c := modeConfig(t, session.ModePerParticipant, banks...)
			c.AutoAdvance = true
			r := newModeRun(t, c)
			r.do("start")
			w := watch(t, r.rdb, c.ID)
			time.Sleep(60 * time.Millisecond)
			var st State
			if raw {
				k, keys := r.s.turnKeys(c.ID, nil)
				v, err := r.s.rdb.EvalSha(context.Background(), shaOf("pauseSession4-6.lua"), keys,
					c.ID, k.StateChannel, "0", "", k.MsgChannel).Text()
				if err != nil {
					t.Fatalf("raw pause: %q %v", v, err)
				}
				d, err := fullstate.Decode([]byte(v))
				if err != nil || d.Full || d.Version != 4 || d.BaseVersion != 2 || len(d.Positions) != 2 ||
					d.Positions[0] != 0 || d.Positions[1] != 1 {
					t.Errorf("reply delta %+v %v", d, err)
				}
				b, _ := r.s.Get(context.Background(), c.ID)
				st = decode[State](t, b)
			} else {
				st = r.do("pause")
				b, _ := r.s.Get(context.Background(), c.ID)
				got := decode[State](t, b)
				got.ServerTimeMS = st.ServerTimeMS
				if !reflect.DeepEqual(got, st) {
					t.Errorf("the wrapper's state %+v\ndiffers from getSession's %+v", st, got)
				}
			}
			if st.Status != "paused" || st.Version != 4 || !st.Participants[0].HasExpired || !st.Participants[1].IsActive {
				t.Fatalf("after a late pause: %+v", st)
			}
			msgs := w.drain(t)
			if len(msgs) != 2 {
				t.Fatalf("%d state messages", len(msgs))
			}
			d3, d4 := decode[delta](t, msgs[0]), decode[delta](t, msgs[1])
			if d3.Type != "STATE_DELTA" || d3.Version != 3 || d3.BaseVersion != 2 || len(d3.Positions) != 2 ||
				d4.Version != 4 || d4.BaseVersion != 3 || len(d4.Positions) != 1 || d4.Positions[0] != 1 {
				t.Errorf("deltas %s\n%s", msgs[0], msgs[1])
			}
			checkTimeExpired(t, r.msg.Wait(t, 1)[0], State{SessionID: c.ID, Version: 3}, &st.Participants[0].ParticipantID)
		})
	}
}

// TestLatePauseNeedsRoomForTwoEvents: a late pause appends two audit
// events, so a stream one entry short of its cap refuses it whole (in
// per_group, also the group-mates' fragments stay as they were).
func TestLatePauseNeedsRoomForTwoEvents(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{session.ModePerParticipant, session.ModePerGroup} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := modeConfig(t, mode, 30, 60000, 30)
			ga, gb := uuid.NewString(), uuid.NewString()
			for i, g := range []string{ga, gb, ga} {
				c.Participants[i].GroupID = g
			}
			r := newModeRun(t, c)
			r.do("start")
			k, keys := r.s.turnKeys(c.ID, nil)
			keys[3] = "sk:" + keyspace.Tag(keyspace.ShardOf(c.ID)) + ":test-events:" + c.ID
			t.Cleanup(func() { r.rdb.Del(context.Background(), keys[3]) })
			ctx := context.Background()
			before, _ := r.s.Get(ctx, c.ID)
			time.Sleep(60 * time.Millisecond)
			err := scriptErr(r.rdb.EvalSha(ctx, shaOf("pauseSession4-6.lua"), keys, c.ID, k.StateChannel, "1", "", k.MsgChannel).Err(), true)
			if !errors.Is(err, session.ErrStreamFull) {
				t.Fatalf("late pause with room for one event: %v", err)
			}
			if after, _ := r.s.Get(ctx, c.ID); maskServerTime(after) != maskServerTime(before) {
				t.Fatalf("a refused pause changed the session:\n%s\n%s", before, after)
			}
			if err := r.rdb.EvalSha(ctx, shaOf("pauseSession4-6.lua"), keys, c.ID, k.StateChannel, "2", "", k.MsgChannel).Err(); err != nil {
				t.Fatalf("late pause with room for two: %v", err)
			}
			if n := r.rdb.XLen(ctx, keys[3]).Val(); n != 2 {
				t.Errorf("XLEN %d, want 2", n)
			}
			if st := getState(t, r.s, c.ID); st.Version != 4 || st.Status != "paused" {
				t.Errorf("after the late pause: %+v", st)
			}
		})
	}
}

// TestSwitchToNextExpiredHere: a switch whose named next participant
// expires in that same switch (a group-mate of the participant who ran
// out, or the participant itself) falls back to the next live participant
// after the current one, or ends the session when nobody is left.
func TestSwitchToNextExpiredHere(t *testing.T) {
	t.Parallel()
	const none = -1
	cases := []struct {
		name      string
		mode      string
		banks     []int64
		groups    []int
		scheduled bool // the scheduler applied the expiry before the switch (a stopped clock)
		next      int
		// outcome
		status  string
		active  int
		expired []int
	}{
		{name: "group-mate", mode: session.ModePerGroup, banks: []int64{30, 60000, 30}, groups: []int{0, 1, 0},
			next: 2, status: "running", active: 1, expired: []int{0, 2}},
		{name: "group-mate nobody left", mode: session.ModePerGroup, banks: []int64{30, 30}, groups: []int{0, 0},
			next: 1, status: "expired", active: none, expired: []int{0, 1}},
		{name: "self", mode: session.ModePerParticipant, banks: []int64{30, 60000},
			next: 0, status: "running", active: 1, expired: []int{0}},
		{name: "self stopped clock", mode: session.ModePerParticipant, banks: []int64{30, 60000}, scheduled: true,
			next: 0, status: "running", active: 1, expired: []int{0}},
		{name: "self nobody left", mode: session.ModePerParticipant, banks: []int64{30},
			next: 0, status: "expired", active: none, expired: []int{0}},
		{name: "self in group", mode: session.ModePerGroup, banks: []int64{30, 60000, 30}, groups: []int{0, 1, 0},
			next: 0, status: "running", active: 1, expired: []int{0, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := modeConfig(t, tc.mode, tc.banks...)
			if tc.groups != nil {
				gids := []string{uuid.NewString(), uuid.NewString()}
				for i, g := range tc.groups {
					c.Participants[i].GroupID = gids[g]
				}
			}
			r := newModeRun(t, c)
			r.do("start")
			if tc.scheduled {
				r.expire()
			} else {
				time.Sleep(60 * time.Millisecond) // past the 30 ms deadline; no scheduler runs
			}
			st := r.do("switch", session.SwitchArgs{NextParticipantID: c.Participants[tc.next].ID})
			if st.Status != tc.status {
				t.Fatalf("status %s, want %s: %+v", st.Status, tc.status, st)
			}
			checkFlags(t, st, tc.expired, tc.active)
			if st.ExpiredParticipantID == nil || *st.ExpiredParticipantID != c.Participants[0].ID {
				t.Errorf("expired_participant_id %v, want p0", st.ExpiredParticipantID)
			}
			d, indexed := r.deadline()
			if tc.active == none {
				if st.ActiveParticipantID != nil || st.CycleStartedAt != nil || indexed {
					t.Errorf("ended session: active %v, cycle_started_at %v, indexed %v", st.ActiveParticipantID, st.CycleStartedAt, indexed)
				}
			} else {
				// the fallback's clock runs from the switch
				eq(t, "cycle_started_at", ms(st.CycleStartedAt), st.ServerTimeMS)
				eq(t, "deadline", d, st.ServerTimeMS+r.p(tc.active).TotalTimeMS)
			}
			eq(t, "p0 used", r.p(0).TimeUsedMS, 30)
			r.noExpiry()
			checkTimeExpired(t, r.msg.Wait(t, 1)[0], State{SessionID: c.ID, Version: 3}, &c.Participants[0].ID)
		})
	}
}

// groupBanksShown checks that every per_group participant shows its
// group's bank: total_time_ms and time_remaining_ms are the group's
// remaining ms, and has_expired says whether it ran out.
func groupBanksShown(t *testing.T, st State) {
	t.Helper()
	for i, p := range st.Participants {
		bank, ok := st.GroupRemainingMS[*p.GroupID]
		if !ok || p.TotalTimeMS != bank || p.TimeRemainingMS != bank || p.HasExpired != (bank <= 0) {
			t.Errorf("participant %d: total %d remaining %d expired %v, group bank %d (v%d)",
				i, p.TotalTimeMS, p.TimeRemainingMS, p.HasExpired, bank, st.Version)
		}
	}
}

// TestPerGroupMembersShowTheBank: whatever charges a group's bank
// (switch, pause, complete, expiry) rewrites every member's fragment, also
// for a session created before the member lists were stored.
func TestPerGroupMembersShowTheBank(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		bankA  int64 // group A: p0, p2, p3; group B: p1
		op     string
		legacy bool // no stored member lists: the script scans
	}{
		{"switch", 60000, "switch", false},
		{"pause", 60000, "pause", false},
		{"complete", 60000, "complete", false},
		{"expire", 30, "expire", false},
		{"switch after the deadline", 30, "switch", false},
		{"late pause", 30, "pause", false},
		{"legacy switch", 60000, "switch", true},
		{"legacy expire", 30, "expire", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := modeConfig(t, session.ModePerGroup, tc.bankA, 60000, tc.bankA, tc.bankA)
			ga, gb := uuid.NewString(), uuid.NewString()
			for i, g := range []string{ga, gb, ga, ga} {
				c.Participants[i].GroupID = g
			}
			r := newModeRun(t, c)
			k := keyspace.For(c.ID)
			if tc.legacy {
				r.rdb.HDel(context.Background(), k.Parts, "g:"+ga, "g:"+gb)
			}
			st0 := r.do("start")
			time.Sleep(20 * time.Millisecond)
			if tc.bankA == 30 {
				time.Sleep(40 * time.Millisecond)
			}
			var st State
			if tc.op == "expire" {
				st = r.expire()
			} else {
				st = r.do(tc.op)
			}
			used := r.p(0).TimeUsedMS
			if tc.bankA == 30 {
				eq(t, "p0 used", used, 30)
			} else if tc.op != "expire" {
				eq(t, "p0 used", used, st.ServerTimeMS-ms(st0.CycleStartedAt))
			}
			eq(t, "group A bank", st.GroupRemainingMS[ga], tc.bankA-used)
			groupBanksShown(t, st)
			// what getSession reads is what was replied
			groupBanksShown(t, getState(t, r.s, c.ID))
			// the member lists, stored at create or by the legacy scan
			for g, want := range map[string]string{ga: "0,2,3", gb: "1"} {
				if got := r.rdb.HGet(context.Background(), k.Parts, "g:"+g).Val(); got != want {
					t.Errorf("member list %q, want %q", got, want)
				}
			}
		})
	}
}

// TestPerGroupLargeSessionDelta: above FULL_MAX the delta of a switch
// carries every member of the charged group, so relays rebuild the same
// banks.
func TestPerGroupLargeSessionDelta(t *testing.T) {
	t.Parallel()
	banks := largeBanks()
	c := modeConfig(t, session.ModePerGroup, banks...)
	ga, gb := uuid.NewString(), uuid.NewString()
	for i := range c.Participants {
		c.Participants[i].GroupID = map[bool]string{true: ga, false: gb}[i%2 == 0]
	}
	r := newModeRun(t, c)
	r.do("start")
	w := watch(t, r.rdb, c.ID)
	time.Sleep(10 * time.Millisecond)
	st := r.do("switch") // p0 (A) -> p1 (B)
	groupBanksShown(t, st)
	msgs := w.drain(t)
	if len(msgs) != 1 {
		t.Fatalf("%d state messages", len(msgs))
	}
	var d struct {
		Positions []int `json:"positions"`
	}
	if err := json.Unmarshal(msgs[0], &d); err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	for _, p := range d.Positions {
		if got[p] {
			t.Errorf("position %d twice in the delta", p)
		}
		got[p] = true
	}
	for i := range 40 {
		if want := i%2 == 0 || i == 1; got[i] != want {
			t.Errorf("position %d in the delta: %v, want %v", i, got[i], want)
		}
	}
}

// largeBanks is 40 participants of 60 s each: above FULL_MAX, so the
// scripts reply and publish deltas.
func largeBanks() []int64 { return slices.Repeat([]int64{60000}, 40) }
