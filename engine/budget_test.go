package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/synckairos/synckairos/keyspace"
	"github.com/synckairos/synckairos/session"
)

// TestSwitchBudget: the per-session switch budget is charged by the switch
// script itself (switchCycle5-8), in the same step: switches within the
// burst pass and say what is left, the next is RATE_LIMITED and changes
// nothing, a replay under an Idempotency-Key is free, a call without a
// budget is not limited, and a refused transition still costs one.
func TestSwitchBudget(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 600_000)
	if _, err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), keyspace.For(c.ID).Budget()) })
	budget := func() *session.Budget { return &session.Budget{Burst: 3, Interval: time.Hour} }
	var first *session.Call // the first switch's call, replayed below
	steps := []struct {
		name      string
		call      *session.Call
		args      session.SwitchArgs
		wantErr   *session.Error
		remaining int64 // when the call charged
	}{
		{"first", &session.Call{IdemKey: "k1", Fingerprint: "f1", Budget: budget()}, session.SwitchArgs{}, nil, 2},
		{"a refused switch still costs one", &session.Call{Budget: budget()},
			session.SwitchArgs{ExpectedVersion: 1}, session.ErrConflict, 1},
		{"last of the burst", &session.Call{Budget: budget()}, session.SwitchArgs{}, nil, 0},
		{"spent", &session.Call{Budget: budget()}, session.SwitchArgs{}, session.ErrRateLimited, 0},
		{"a replay is free", nil, session.SwitchArgs{}, nil, 0},
		{"no budget, no limit", nil, session.SwitchArgs{}, nil, 0},
	}
	for _, st := range steps {
		call := st.call
		if st.name == "a replay is free" {
			call = &session.Call{IdemKey: "k1", Fingerprint: "f1", Budget: budget()}
		}
		before, err := s.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Switch(ctx, c.ID, st.args, call)
		switch {
		case st.wantErr != nil:
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
			}
			after, _ := s.Get(ctx, c.ID)
			if versionOf(t, after) != versionOf(t, before) {
				t.Fatalf("%s: the refused switch changed the session", st.name)
			}
			if st.wantErr == session.ErrRateLimited {
				if _, d := errDetails(t, err); d["limit"] != 3.0 || d["retry_after_us"].(float64) <= 0 {
					t.Errorf("%s: details %v", st.name, d)
				}
			}
		case err != nil:
			t.Fatalf("%s: %v", st.name, err)
		default:
			if versionOf(t, got) != versionOf(t, before)+1 && !(call != nil && call.Replayed) {
				t.Errorf("%s: version %d after %d", st.name, versionOf(t, got), versionOf(t, before))
			}
		}
		if first == nil {
			first = call
		}
		if call == nil || call.Budget == nil {
			continue
		}
		charged := st.wantErr == nil || st.wantErr == session.ErrConflict
		if call.Replayed {
			charged = false
		}
		if st.wantErr == nil && call.Budget.Charged != charged {
			t.Errorf("%s: charged %v, want %v", st.name, call.Budget.Charged, charged)
		}
		if call.Budget.Charged && (call.Budget.Remaining != st.remaining || call.Budget.ResetAfter <= 0) {
			t.Errorf("%s: remaining %d reset %v, want %d", st.name, call.Budget.Remaining, call.Budget.ResetAfter, st.remaining)
		}
	}
	if !first.Budget.Charged {
		t.Error("the first switch was not charged")
	}
}

// TestCallerBudget: with a caller's budget (the HTTP switch on a single
// Redis) the switch charges it first of all, in the same step: replays and
// calls on a missing session included, as the limiter did when it ran before
// the call. A spent caller's budget refuses the switch with budget "caller"
// and charges the session's budget nothing; what is left of each budget comes
// back in the reply.
func TestCallerBudget(t *testing.T) {
	t.Parallel()
	s, rdb := newTestScripts(t)
	ctx := context.Background()
	c := newConfig(t, session.ModePerParticipant, 2, 600_000)
	if _, err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	callerKey := "sk:rl:ip:caller-budget-test-" + c.ID
	missingKey := callerKey + "-missing"
	sessKey := keyspace.For(c.ID).Budget()
	t.Cleanup(func() { rdb.Del(context.Background(), sessKey, callerKey, missingKey) })
	caller := func(key string) *session.Budget {
		return &session.Budget{Key: key, Burst: 3, Interval: time.Hour}
	}
	sess := func() *session.Budget { return &session.Budget{Burst: 10, Interval: time.Hour} }
	steps := []struct {
		name          string
		id            string // "": the session
		call          *session.Call
		wantErr       *session.Error
		callerLeft    int64 // when the caller's budget was charged
		sessionLeft   int64 // -1: the session's budget is not charged
		wantVersionUp bool
		replay        bool
	}{
		{"both budgets", "", &session.Call{IdemKey: "k1", Fingerprint: "f1", Budget: sess(), Caller: caller(callerKey)},
			nil, 2, 9, true, false},
		{"the caller's alone", "", &session.Call{Caller: caller(callerKey)}, nil, 1, -1, true, false},
		{"a replay costs the caller one", "", &session.Call{IdemKey: "k1", Fingerprint: "f1", Budget: sess(),
			Caller: caller(callerKey)}, nil, 0, -1, false, true},
		{"the caller's spent", "", &session.Call{Budget: sess(), Caller: caller(callerKey)},
			session.ErrRateLimited, 0, -1, false, false},
		{"a missing session costs the caller one", "00000000-0000-4000-8000-00000000abcd",
			&session.Call{Caller: caller(missingKey)}, session.ErrSessionNotFound, 0, -1, false, false},
	}
	for _, st := range steps {
		id := c.ID
		if st.id != "" {
			id = st.id
		}
		before, _ := s.Get(ctx, c.ID)
		sessTAT := rdb.Get(ctx, sessKey).Val()
		got, err := s.Switch(ctx, id, session.SwitchArgs{}, st.call)
		if !errors.Is(err, st.wantErr) && !(st.wantErr == nil && err == nil) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
		}
		after, _ := s.Get(ctx, c.ID)
		if up := versionOf(t, after) == versionOf(t, before)+1; up != st.wantVersionUp {
			t.Errorf("%s: version %d after %d", st.name, versionOf(t, after), versionOf(t, before))
		}
		if st.call.Replayed != st.replay {
			t.Errorf("%s: replayed %v", st.name, st.call.Replayed)
		} else if err == nil && !st.replay && versionOf(t, got) != versionOf(t, after) {
			t.Errorf("%s: the reply is version %d, the session %d", st.name, versionOf(t, got), versionOf(t, after))
		}
		switch {
		case st.wantErr == session.ErrRateLimited:
			if _, d := errDetails(t, err); d["budget"] != "caller" || d["limit"] != 3.0 || d["retry_after_us"].(float64) <= 0 {
				t.Errorf("%s: details %v", st.name, d)
			}
		case st.wantErr != nil:
			if n, _ := rdb.Exists(ctx, missingKey).Result(); n != 1 {
				t.Errorf("%s: the caller's budget was not charged", st.name)
			}
		default:
			b := st.call.Caller
			if !b.Charged || b.Remaining != st.callerLeft || b.ResetAfter <= 0 {
				t.Errorf("%s: caller charged %v remaining %d reset %v, want %d", st.name, b.Charged, b.Remaining,
					b.ResetAfter, st.callerLeft)
			}
		}
		if sb := st.call.Budget; sb != nil && st.sessionLeft >= 0 && (!sb.Charged || sb.Remaining != st.sessionLeft) {
			t.Errorf("%s: session budget charged %v remaining %d, want %d", st.name, sb.Charged, sb.Remaining, st.sessionLeft)
		}
		if st.sessionLeft < 0 && rdb.Get(ctx, sessKey).Val() != sessTAT {
			t.Errorf("%s: the session's budget was charged", st.name)
		}
		if pttl := rdb.PTTL(ctx, callerKey).Val(); pttl <= 0 {
			t.Errorf("%s: the caller's TAT has no expiry (%v)", st.name, pttl)
		}
	}
}

// versionOf reads a state's version.
func versionOf(t *testing.T, state []byte) int64 {
	t.Helper()
	var v struct {
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(state, &v); err != nil {
		t.Fatalf("%v: %s", err, state)
	}
	return v.Version
}
