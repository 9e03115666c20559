package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestAPIModeFields: create names the fields a mode needs (400).
func TestAPIModeFields(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	p := func(extra string) string {
		return `{"participant_id":"` + uuid.NewString() + `","participant_index":0,"total_time_ms":60000` + extra + `}`
	}
	for _, tc := range []struct {
		mode, extra, part, field string
	}{
		{"per_cycle", "", p(""), `"field":"time_per_cycle_ms"`},
		{"global", "", p(""), `"field":"total_time_ms"`},
		{"per_group", "", p(""), `"field":"participants.0.group_id"`},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			body := `{"session_id":"` + uuid.NewString() + `","sync_mode":"` + tc.mode + `","participants":[` + tc.part + `]` + tc.extra + `}`
			r := doReq(t, "POST", s.base+"/v1/sessions", body)
			if e := r.errCode(t); r.status != 400 || e.Error.Code != "VALIDATION_ERROR" || !bytes.Contains(e.Error.Details, []byte(tc.field)) {
				t.Errorf("got %d %s, want 400 naming %s", r.status, r.body, tc.field)
			}
		})
	}
}

// TestAPIExpiryEndToEnd: on one server (embedded Redis, its scheduler on),
// a participant's clock runs out with nobody calling: the GET shows it,
// the rotation skips them, and naming them as next is a 400.
func TestAPIExpiryEndToEnd(t *testing.T) {
	t.Parallel()
	s := startAPI(t, map[string]string{"EXPIRY_POLL_MS": "5"}, nil)
	id, p0, p1 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	body := `{"session_id":"` + id + `","sync_mode":"per_participant","auto_advance":true,"warnings_ms":[500],"participants":[` +
		`{"participant_id":"` + p0 + `","participant_index":0,"total_time_ms":1000},` +
		`{"participant_id":"` + p1 + `","participant_index":1,"total_time_ms":60000}]}`
	if r := doReq(t, "POST", s.base+"/v1/sessions", body); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/start", ""); r.status != 200 {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	var st map[string]any
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st = doReq(t, "GET", s.base+"/v1/sessions/"+id, "").state(t)
		if st["active_participant_id"] == p1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no expiry: %v", st)
		}
	}
	ps := st["participants"].([]any)
	first := ps[0].(map[string]any)
	if first["has_expired"] != true || num(first["time_used_ms"]) != 1000 || num(st["version"]) != 3 {
		t.Fatalf("after expiry: %v", st)
	}
	r := doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", `{"next_participant_id":"`+p0+`"}`)
	if e := r.errCode(t); r.status != 400 || e.Error.Code != "VALIDATION_ERROR" || !bytes.Contains(e.Error.Details, []byte("next_participant_id")) {
		t.Errorf("switch to the expired participant: %d %s", r.status, r.body)
	}
	r = doReq(t, "POST", s.base+"/v1/sessions/"+id+"/switch", "")
	if st := r.state(t); r.status != 200 || st["active_participant_id"] != p1 || num(st["version"]) != 4 {
		t.Errorf("rotation did not skip the expired participant: %d %s", r.status, r.body)
	}
	if r := doReq(t, "GET", s.base+"/metrics", ""); !bytes.Contains(r.body, []byte("synckairos_expiry_fired_total 1")) {
		i := max(0, bytes.Index(r.body, []byte("synckairos_expiry_fired_total")))
		t.Errorf("metrics: fired counter %q", r.body[i:min(len(r.body), i+40)])
	}
}
