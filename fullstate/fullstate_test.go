package fullstate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	json "github.com/goccy/go-json"
)

// store is the session as Redis holds it, the Fetch source of these tests
// (the scripts' own fetch is exercised in package main against Redis).
type store struct {
	mu      sync.Mutex
	version int64
	parts   []string
	fetches int
	err     error
}

func (s *store) head() string { return fmt.Sprintf(`{"session_id":"s","version":%d}`, s.version) }

func (s *store) fetch(_ context.Context, id string) ([]byte, [][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.err != nil {
		return nil, nil, s.err
	}
	out := make([][]byte, len(s.parts))
	for i, p := range s.parts {
		out[i] = []byte(p)
	}
	return []byte(s.head()), out, nil
}

// change applies a transition to the store and returns its delta.
func (s *store) change(positions ...int) *Delta {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	d := &Delta{SessionID: "s", Version: s.version, BaseVersion: s.version - 1, Count: len(s.parts),
		Session: json.RawMessage(s.head())}
	for _, p := range positions {
		s.parts[p] = fmt.Sprintf(`{"p":%d,"v":%d}`, p, s.version)
		d.Positions = append(d.Positions, p)
		d.Participants = append(d.Participants, json.RawMessage(s.parts[p]))
	}
	return d
}

func (s *store) full() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head()[:len(s.head())-1] + `,"participants":[` + strings.Join(s.parts, ",") + `]}`
}

func newStore(n int) *store {
	s := &store{parts: make([]string, n)}
	for i := range s.parts {
		s.parts[i] = fmt.Sprintf(`{"p":%d,"v":0}`, i)
	}
	return s
}

func TestApplyFollowsDeltas(t *testing.T) {
	ctx := context.Background()
	st := newStore(5)
	a := New(st.fetch, 10)
	// a create carries every participant: no fetch needed
	create := st.change(0, 1, 2, 3, 4)
	create.BaseVersion = 0
	steps := []*Delta{create, st.change(0, 1), st.change(1, 2), st.change(), st.change(4, 0)}
	for i, d := range steps {
		got, err := a.Apply(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"session_id":"s","version":%d,"participants":[`, d.Version)
		if !strings.HasPrefix(string(got), want) {
			t.Fatalf("step %d: %s", i, got)
		}
	}
	if got, _ := a.Apply(ctx, steps[len(steps)-1]); string(got) != st.full() {
		t.Errorf("got %s\nwant %s", got, st.full())
	}
	if st.fetches != 0 {
		t.Errorf("%d fetches while following in order", st.fetches)
	}
}

func TestApplyRefetchesAfterAGap(t *testing.T) {
	ctx := context.Background()
	st := newStore(4)
	a := New(st.fetch, 10)
	st.change(0) // v1, never seen by the assembler
	d2 := st.change(1)
	got, err := a.Apply(ctx, d2)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != st.full() || st.fetches != 1 {
		t.Fatalf("fetches %d, got %s want %s", st.fetches, got, st.full())
	}
	st.change(2) // missed again
	d4 := st.change(3)
	if got, _ := a.Apply(ctx, d4); string(got) != st.full() || st.fetches != 2 {
		t.Fatalf("after a second gap: fetches %d, got %s", st.fetches, got)
	}
	// a delta the cache is already past is laid over a copy
	old := &Delta{SessionID: "s", Version: 3, BaseVersion: 2, Count: 4, Session: json.RawMessage(`{"session_id":"s","version":3}`),
		Positions: []int{2}, Participants: []json.RawMessage{json.RawMessage(`{"old":true}`)}}
	got, err = a.Apply(ctx, old)
	if err != nil || !strings.Contains(string(got), `{"old":true}`) || !strings.Contains(string(got), `"version":3,`) {
		t.Fatalf("stale delta: %s %v", got, err)
	}
	d5 := st.change(0)
	if got, _ := a.Apply(ctx, d5); string(got) != st.full() {
		t.Errorf("stale delta corrupted the cache: %s", got)
	}
}

func TestApplyFetchErrorsAndSizeChanges(t *testing.T) {
	ctx := context.Background()
	st := newStore(3)
	a := New(st.fetch, 10)
	st.change(0)
	d := st.change(1)
	st.err = errors.New("redis down")
	if _, err := a.Apply(ctx, d); !errors.Is(err, st.err) {
		t.Fatalf("err = %v", err)
	}
	st.err = nil
	// the fetched session has another size than the delta says: answer
	// with what was fetched, and cache nothing
	d.Count = 4
	got, err := a.Apply(ctx, d)
	if err != nil || !strings.Contains(string(got), `"participants":[{"p":0,"v":1},{"p":1,"v":2},{"p":2,"v":0}]`) {
		t.Fatalf("size mismatch: %s %v", got, err)
	}
	d.Count = 3
	if _, err := a.Apply(ctx, d); err != nil || st.fetches != 3 {
		t.Errorf("fetches %d: the mismatched fetch was cached", st.fetches)
	}
}

func TestForgetAndEviction(t *testing.T) {
	ctx := context.Background()
	st := newStore(2)
	a := New(st.fetch, 2)
	for _, id := range []string{"a", "b", "c"} {
		d := &Delta{SessionID: id, Version: 1, Count: 2, Session: json.RawMessage(`{"v":1}`), Positions: []int{0, 1},
			Participants: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`2`)}}
		if _, err := a.Apply(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(a.sessions); n != 2 {
		t.Errorf("cache holds %d sessions, max 2", n)
	}
	a.Forget("c")
	if _, ok := a.sessions["c"]; ok {
		t.Error("Forget kept the session")
	}
}

func TestApplyConcurrent(t *testing.T) {
	ctx := context.Background()
	st := newStore(8)
	a := New(st.fetch, 10)
	d := st.change(0, 1, 2, 3, 4, 5, 6, 7)
	d.BaseVersion = 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Apply(ctx, d); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestDecode(t *testing.T) {
	good := `{"type":"STATE_DELTA","sessionId":"s","timestamp":5,"version":3,"base_version":2,"participant_count":40,` +
		`"session":{"a":1},"positions":[0,39],"participants":[{"x":1},{"y":2}]}`
	d, err := Decode([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if d.SessionID != "s" || d.Timestamp != 5 || d.Version != 3 || d.BaseVersion != 2 || d.Count != 40 ||
		string(d.Session) != `{"a":1}` || len(d.Positions) != 2 || string(d.Participants[1]) != `{"y":2}` {
		t.Errorf("decoded %+v", d)
	}
	for _, bad := range []string{
		`not json`,
		`{"session":{"a":1},"positions":[],"participants":[]}`,                                      // no sessionId
		`{"sessionId":"s","positions":[],"participants":[]}`,                                        // no session
		`{"sessionId":"s","session":{},"participant_count":2,"positions":[0],"participants":[]}`,    // lengths differ
		`{"sessionId":"s","session":{},"participant_count":2,"positions":[2],"participants":[{}]}`,  // out of range
		`{"sessionId":"s","session":{},"participant_count":2,"positions":[-1],"participants":[{}]}`, // negative
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}

func TestBuild(t *testing.T) {
	cases := []struct {
		head  string
		parts []string
		want  string
	}{
		{`{"a":1}`, []string{`{"p":0}`, `{"p":1}`}, `{"a":1,"participants":[{"p":0},{"p":1}]}`},
		{"{\"a\":1}\n ", []string{`{}`}, `{"a":1,"participants":[{}]}`},
		{`{"a":1}`, nil, `{"a":1,"participants":[]}`},
	}
	for _, c := range cases {
		var parts [][]byte
		for _, p := range c.parts {
			parts = append(parts, []byte(p))
		}
		if got := Build([]byte(c.head), parts); string(got) != c.want {
			t.Errorf("Build(%q) = %s, want %s", c.head, got, c.want)
		}
		var v any
		if err := json.Unmarshal(Build([]byte(c.head), parts), &v); err != nil {
			t.Errorf("Build(%q) is not JSON: %v", c.head, err)
		}
	}
}

// TestApplyNewLifeNeedsNoOldBase: the id created again (a higher life)
// starts from its own create or a fetch, never from the old life's cache,
// even where the versions line up.
func TestApplyNewLifeNeedsNoOldBase(t *testing.T) {
	ctx := context.Background()
	st := newStore(3)
	a := New(st.fetch, 10)
	for _, d := range []*Delta{st.change(0, 1, 2), st.change(0)} { // life 0 (zero value), v1 and v2
		if _, err := a.Apply(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	st.fetches = 0
	// life 7 reached v2 while the assembler slept; its v3 has base 2, as
	// the cached life 0 state has
	st.parts = []string{`{"life":7,"p":0}`, `{"life":7,"p":1}`, `{"life":7,"p":2}`}
	d := st.change(1)
	d.Life = 7
	got, err := a.Apply(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != st.full() || st.fetches != 1 {
		t.Fatalf("fetches %d, got %s want %s", st.fetches, got, st.full())
	}
}
