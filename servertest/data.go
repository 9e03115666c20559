package servertest

import (
	"bytes"
	"fmt"
	"sync"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
)

// SessionBody returns a create body with n participants of 60 s each (and
// extra, such as `,"auto_advance":true`, before its closing brace), with
// the ids it used.
func SessionBody(n int, extra string) (id string, parts []string, body string) {
	id = uuid.NewString()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"session_id":%q,"sync_mode":"per_participant","participants":[`, id)
	for i := 0; i < n; i++ {
		p := uuid.NewString()
		parts = append(parts, p)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"participant_id":%q,"participant_index":%d,"total_time_ms":60000}`, p, i)
	}
	b.WriteString("]" + extra + "}")
	return id, parts, b.String()
}

// Num is a decoded JSON number as an integer.
func Num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// LogBuffer collects a server's log lines from several goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TimeMsg is a TIME_EXPIRED or TIME_WARNING message as the scripts publish
// it on a session's message channel.
type TimeMsg struct {
	Type          string  `json:"type"`
	SessionID     string  `json:"sessionId"`
	ParticipantID *string `json:"participant_id"`
	Timestamp     int64   `json:"timestamp"`
	Version       int64   `json:"version"`
	RemainingMS   int64   `json:"remaining_ms"` // TIME_WARNING
}

// EventsPage is one page of GET /v1/sessions/{id}/events (persist's
// Store.Events): the recorded events oldest first, and the after_version
// of the next page, nil on the last.
type EventsPage struct {
	Data []struct {
		Version   int64           `json:"version"`
		EventType string          `json:"event_type"`
		Timestamp string          `json:"timestamp"`
		StateKind string          `json:"state_kind"` // "full" or "delta"
		State     json.RawMessage `json:"state"`
	} `json:"data"`
	Next *int64 `json:"next_after_version"`
}
