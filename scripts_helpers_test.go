package main

import (
	"context"
	"os"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/session"
)

// testRedisAddr is the machine's Redis; REDIS_TEST_ADDR overrides it.
func testRedisAddr() string {
	if a := os.Getenv("REDIS_TEST_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func newTestScripts(t testing.TB) (*Scripts, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testRedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testRedisAddr(), err)
	}
	s := NewScripts(rdb, 1_000_000, 1000)
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

// State mirrors the v1 state for assertions.
type State struct {
	SessionID            string        `json:"session_id"`
	SyncMode             string        `json:"sync_mode"`
	Status               string        `json:"status"`
	Version              int64         `json:"version"`
	ActiveParticipantID  *string       `json:"active_participant_id"`
	TotalTimeMS          int64         `json:"total_time_ms"`
	TimePerCycleMS       *int64        `json:"time_per_cycle_ms"`
	IncrementMS          *int64        `json:"increment_ms"`
	MaxTimeMS            *int64        `json:"max_time_ms"`
	AutoAdvance          bool          `json:"auto_advance"`
	Metadata             any           `json:"metadata"`
	CycleStartedAt       *time.Time    `json:"cycle_started_at"`
	SessionStartedAt     *time.Time    `json:"session_started_at"`
	SessionCompletedAt   *time.Time    `json:"session_completed_at"`
	CreatedAt            time.Time     `json:"created_at"`
	UpdatedAt            time.Time     `json:"updated_at"`
	ServerTimeMS         int64         `json:"server_time_ms"`
	ExpiredParticipantID *string       `json:"expired_participant_id"`
	Participants         []Participant `json:"participants"`
}

type Participant struct {
	ParticipantID    string  `json:"participant_id"`
	ParticipantIndex int64   `json:"participant_index"`
	TotalTimeMS      int64   `json:"total_time_ms"`
	TimeUsedMS       int64   `json:"time_used_ms"`
	TimeRemainingMS  int64   `json:"time_remaining_ms"`
	CycleCount       int64   `json:"cycle_count"`
	IsActive         bool    `json:"is_active"`
	HasExpired       bool    `json:"has_expired"`
	GroupID          *string `json:"group_id"`
}

func decodeState(t testing.TB, b []byte) State {
	t.Helper()
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decode state: %v\n%s", err, b)
	}
	return s
}

// newConfig returns a config with n participants, each with bank ms.
func newConfig(mode string, n int, bank int64) *session.Config {
	c := &session.Config{ID: uuid.NewString(), SyncMode: mode}
	for i := 0; i < n; i++ {
		c.Participants = append(c.Participants, session.Participant{ID: uuid.NewString(), Index: int64(i), TotalTimeMS: bank})
	}
	return c
}
