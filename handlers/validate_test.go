package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

const (
	sid = "6f1c2d3e-1111-4222-8333-44445555666a"
	p1  = "6f1c2d3e-1111-4222-8333-444455556661"
	p2  = "6f1c2d3e-1111-4222-8333-444455556662"
	g1  = "6f1c2d3e-1111-4222-8333-4444555566a1"
)

func participant(id string, idx int, extra string) string {
	return `{"participant_id":"` + id + `","participant_index":` + strconv.Itoa(idx) + `,"total_time_ms":60000` + extra + `}`
}

func createBody(extra string, parts ...string) string {
	if parts == nil {
		parts = []string{participant(p1, 0, ""), participant(p2, 1, "")}
	}
	return `{"session_id":"` + sid + `","sync_mode":"per_participant","participants":[` + strings.Join(parts, ",") + `]` + extra + `}`
}

// fieldsOf returns the rejected fields, "field: message" each.
func fieldsOf(t *testing.T, err error) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err == nil {
		return out
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %T %v", err, err)
	}
	for _, f := range ve.Fields {
		out[f.Field] = f.Message
	}
	return out
}

func TestParseCreate(t *testing.T) {
	many := make([]string, 1001)
	for i := range many {
		many[i] = participant(fmt.Sprintf("6f1c2d3e-1111-4222-8333-%012x", i), i, "")
	}
	cases := []struct {
		name string
		body string
		bad  map[string]string // field -> message substring; empty: valid
	}{
		{"valid minimal", createBody(""), nil},
		{"valid every optional field", createBody(`,"total_time_ms":120000,"time_per_cycle_ms":1000,"increment_ms":0,"max_time_ms":86400000,"auto_advance":true,"metadata":{"a":[1]}`,
			participant(p1, 0, `,"group_id":"`+g1+`"`), participant(p2, 1, "")), nil},
		{"uppercase uuid accepted", strings.Replace(createBody(""), sid, strings.ToUpper(sid), 1), nil},
		{"malformed JSON", `{"session_id":`, map[string]string{"body": "Malformed JSON"}},
		{"not JSON", `oops`, map[string]string{"body": "Malformed JSON"}},
		{"trailing garbage", createBody("") + `x`, map[string]string{"body": "Malformed JSON"}},
		{"duplicate key", strings.Replace(createBody(""), `{"session_id"`, `{"sync_mode":"global","session_id"`, 1),
			map[string]string{"sync_mode": "Duplicate key 'sync_mode'"}},
		{"duplicate key in a participant", createBody("", participant(p1, 0, ""), participant(p2, 1, `,"total_time_ms":1`)),
			map[string]string{"participants.1.total_time_ms": "Duplicate key"}},
		{"duplicate key in metadata", createBody(`,"metadata":{"a":{"b":1,"b":2}}`), map[string]string{"metadata.a.b": "Duplicate key"}},
		{"duplicate participant_index", createBody("", participant(p1, 0, ""), participant(p2, 1, ""), participant(g1, 0, "")),
			map[string]string{"participants.0.participant_index": "Duplicate participant_index 0 (also participants.2.participant_index)",
				"participants.2.participant_index": "Duplicate participant_index 0 (also participants.0.participant_index)"}},
		{"not an object", `[1]`, map[string]string{"body": "Expected object, received array"}},
		{"empty body", ``, map[string]string{"body": "Expected object"}},
		{"missing required", `{}`, map[string]string{"session_id": "Required", "sync_mode": "Required", "participants": "Required"}},
		{"unknown key", createBody(`,"color":"red","a":1`), map[string]string{"body": "Unrecognized key(s) in object: 'a', 'color'"}},
		{"bad session uuid", strings.Replace(createBody(""), sid, "not-a-uuid", 1), map[string]string{"session_id": "Invalid uuid"}},
		{"session_id number", strings.Replace(createBody(""), `"`+sid+`"`, `5`, 1), map[string]string{"session_id": "Expected string, received number"}},
		{"bad sync_mode", strings.Replace(createBody(""), "per_participant", "chess", 1), map[string]string{"sync_mode": "Invalid enum value"}},
		{"participants not array", `{"session_id":"` + sid + `","sync_mode":"per_participant","participants":{}}`, map[string]string{"participants": "Expected array, received object"}},
		{"empty participants", `{"session_id":"` + sid + `","sync_mode":"per_participant","participants":[]}`, map[string]string{"participants": "at least 1"}},
		{"1001 participants", `{"session_id":"` + sid + `","sync_mode":"per_participant","participants":[` + strings.Join(many, ",") + `]}`, map[string]string{"participants": "at most 1000"}},
		{"duplicate participant", createBody("", participant(p1, 0, ""), participant(p1, 1, "")), map[string]string{"participants.1.participant_id": "Duplicate"}},
		{"participant bad uuid", createBody("", participant("x", 0, "")), map[string]string{"participants.0.participant_id": "Invalid uuid"}},
		{"participant negative index", createBody("", participant(p1, -1, "")), map[string]string{"participants.0.participant_index": "greater than or equal to 0"}},
		{"participant float index", createBody("", strings.Replace(participant(p1, 0, ""), `"participant_index":0`, `"participant_index":0.5`, 1)), map[string]string{"participants.0.participant_index": "Expected integer"}},
		{"participant time low", createBody("", strings.Replace(participant(p1, 0, ""), "60000", "999", 1)), map[string]string{"participants.0.total_time_ms": "greater than or equal to 1000"}},
		{"participant time high", createBody("", strings.Replace(participant(p1, 0, ""), "60000", "86400001", 1)), map[string]string{"participants.0.total_time_ms": "less than or equal to 86400000"}},
		{"participant time string", createBody("", strings.Replace(participant(p1, 0, ""), "60000", `"60000"`, 1)), map[string]string{"participants.0.total_time_ms": "Expected number, received string"}},
		{"participant missing fields", createBody("", `{}`), map[string]string{"participants.0.participant_id": "Required", "participants.0.participant_index": "Required", "participants.0.total_time_ms": "Required"}},
		{"participant bad group", createBody("", participant(p1, 0, `,"group_id":"g"`)), map[string]string{"participants.0.group_id": "Invalid uuid"}},
		{"participant unknown key", createBody("", participant(p1, 0, `,"name":"x"`)), map[string]string{"participants.0": "Unrecognized key(s) in object: 'name'"}},
		{"participant not object", createBody("", `7`), map[string]string{"participants.0": "Expected object, received number"}},
		{"time_per_cycle low", createBody(`,"time_per_cycle_ms":999`), map[string]string{"time_per_cycle_ms": "greater than or equal to 1000"}},
		{"time_per_cycle high", createBody(`,"time_per_cycle_ms":86400001`), map[string]string{"time_per_cycle_ms": "less than or equal to 86400000"}},
		{"increment negative", createBody(`,"increment_ms":-1`), map[string]string{"increment_ms": "greater than or equal to 0"}},
		{"increment high", createBody(`,"increment_ms":60001`), map[string]string{"increment_ms": "less than or equal to 60000"}},
		{"max_time low", createBody(`,"max_time_ms":5`), map[string]string{"max_time_ms": "greater than or equal to 1000"}},
		{"max_time high", createBody(`,"max_time_ms":86400001`), map[string]string{"max_time_ms": "less than or equal to 86400000"}},
		{"total_time low", createBody(`,"total_time_ms":999`), map[string]string{"total_time_ms": "greater than or equal to 1000"}},
		{"null optional", createBody(`,"increment_ms":null`), map[string]string{"increment_ms": "Expected number, received null"}},
		{"auto_advance string", createBody(`,"auto_advance":"yes"`), map[string]string{"auto_advance": "Expected boolean, received string"}},
		{"metadata array", createBody(`,"metadata":[1]`), map[string]string{"metadata": "Expected object, received array"}},
		// per-mode required fields
		{"per_cycle without time_per_cycle_ms", strings.Replace(createBody(""), "per_participant", "per_cycle", 1), map[string]string{"time_per_cycle_ms": "Required for sync_mode per_cycle"}},
		{"per_cycle valid", strings.Replace(createBody(`,"time_per_cycle_ms":30000`), "per_participant", "per_cycle", 1), nil},
		{"global without total_time_ms", strings.Replace(createBody(""), "per_participant", "global", 1), map[string]string{"total_time_ms": "Required for sync_mode global"}},
		{"global valid", strings.Replace(createBody(`,"total_time_ms":300000`), "per_participant", "global", 1), nil},
		{"per_group without group_id", strings.Replace(createBody("", participant(p1, 0, `,"group_id":"`+g1+`"`), participant(p2, 1, "")), "per_participant", "per_group", 1),
			map[string]string{"participants.1.group_id": "Required for sync_mode per_group"}},
		{"per_group banks disagree", strings.Replace(createBody("", participant(p1, 0, `,"group_id":"`+g1+`"`),
			strings.Replace(participant(p2, 1, `,"group_id":"`+g1+`"`), "60000", "70000", 1)), "per_participant", "per_group", 1),
			map[string]string{"participants.1.total_time_ms": "must equal participants.0.total_time_ms"}},
		{"per_group valid", strings.Replace(createBody("", participant(p1, 0, `,"group_id":"`+g1+`"`), participant(p2, 1, `,"group_id":"`+g1+`"`)), "per_participant", "per_group", 1), nil},
		{"warnings valid", createBody(`,"warnings_ms":[10000,5000,1000]`), nil},
		{"warnings not array", createBody(`,"warnings_ms":5000`), map[string]string{"warnings_ms": "Expected array, received number"}},
		{"warnings too many", createBody(`,"warnings_ms":[1000,2000,3000,4000,5000,6000]`), map[string]string{"warnings_ms": "at most 5"}},
		{"warnings bad entries", createBody(`,"warnings_ms":[50,1000,1000,"x"]`), map[string]string{"warnings_ms.0": "greater than or equal to 100",
			"warnings_ms.2": "Duplicate", "warnings_ms.3": "Expected number, received string"}},
		{"count_up needs nothing", strings.Replace(createBody(""), "per_participant", "count_up", 1), nil},
		{"every bad field at once", `{"session_id":"x","sync_mode":"y","participants":[{"participant_id":"z","participant_index":-1,"total_time_ms":1}],"increment_ms":-5,"extra":1}`,
			map[string]string{"body": "Unrecognized", "session_id": "uuid", "sync_mode": "enum", "participants.0.participant_id": "uuid",
				"participants.0.participant_index": "greater", "participants.0.total_time_ms": "greater", "increment_ms": "greater"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCreate([]byte(tc.body))
			got := fieldsOf(t, err)
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", got)
				}
				if c.ID == "" || len(c.Participants) == 0 {
					t.Fatalf("config not filled: %+v", c)
				}
				return
			}
			if len(got) != len(tc.bad) {
				t.Errorf("want %d bad fields %v, got %v", len(tc.bad), tc.bad, got)
			}
			for f, want := range tc.bad {
				if !strings.Contains(got[f], want) {
					t.Errorf("field %q: want message containing %q, got %q (all: %v)", f, want, got[f], got)
				}
			}
		})
	}
}

func TestParseCreateFills(t *testing.T) {
	c, err := ParseCreate([]byte(createBody(`,"total_time_ms":120000,"increment_ms":0,"auto_advance":true,"metadata":{"k":"v"}`,
		participant(p1, 3, `,"group_id":"`+g1+`"`), participant(p2, 1, ""))))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != sid || c.SyncMode != "per_participant" || *c.TotalTimeMS != 120000 || *c.IncrementMS != 0 ||
		c.TimePerCycleMS != nil || c.MaxTimeMS != nil || !c.AutoAdvance || string(c.Metadata) != `{"k":"v"}` {
		t.Fatalf("config: %+v", c)
	}
	if p := c.Participants[0]; p.ID != p1 || p.Index != 3 || p.TotalTimeMS != 60000 || p.GroupID != g1 {
		t.Fatalf("participant 0: %+v", p)
	}
	if p := c.Participants[1]; p.ID != p2 || p.Index != 1 || p.GroupID != "" {
		t.Fatalf("participant 1: %+v", p)
	}
}

// TestParseLowercasesIDs: every id of a body comes out in lower case, so
// either spelling of a UUID names one session and one participant.
func TestParseLowercasesIDs(t *testing.T) {
	up := strings.ToUpper
	c, err := ParseCreate([]byte(strings.Replace(createBody("", participant(up(p1), 0, `,"group_id":"`+up(g1)+`"`),
		participant(p2, 1, "")), sid, up(sid), 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != sid || c.Participants[0].ID != p1 || c.Participants[0].GroupID != g1 {
		t.Fatalf("create: %+v", c)
	}
	_, err = ParseCreate([]byte(createBody("", participant(up(p1), 0, ""), participant(p1, 1, ""))))
	if got := fieldsOf(t, err); !strings.Contains(got["participants.1.participant_id"], "Duplicate") {
		t.Fatalf("one id in two cases is one participant: %v", got)
	}
	a, err := ParseSwitch([]byte(`{"next_participant_id":"`+up(p2)+`","current_participant_id":"`+up(p1)+`"}`), nil)
	if err != nil || a.NextParticipantID != p2 || a.CurrentParticipantID != p1 {
		t.Fatalf("switch: %+v %v", a, err)
	}
}

func TestParseSwitch(t *testing.T) {
	cases := []struct {
		name, body, ifMatch string
		want                int64
		next, current       string
		bad                 map[string]string
	}{
		{name: "empty body"},
		{name: "whitespace body", body: " \n"},
		{name: "all fields", body: `{"next_participant_id":"` + p2 + `","expected_version":7,"current_participant_id":"` + p1 + `"}`, want: 7, next: p2, current: p1},
		{name: "if-match quoted", ifMatch: `"4"`, want: 4},
		{name: "if-match weak", ifMatch: `W/"4"`, want: 4},
		{name: "if-match agrees", body: `{"expected_version":4}`, ifMatch: `4`, want: 4},
		{name: "if-match disagrees", body: `{"expected_version":4}`, ifMatch: `5`, bad: map[string]string{"If-Match": "Disagrees"}},
		{name: "if-match junk", ifMatch: `abc`, bad: map[string]string{"If-Match": "version number"}},
		{name: "version zero", body: `{"expected_version":0}`, bad: map[string]string{"expected_version": "greater than or equal to 1"}},
		{name: "version string", body: `{"expected_version":"3"}`, bad: map[string]string{"expected_version": "Expected number, received string"}},
		{name: "next not uuid", body: `{"next_participant_id":"bob"}`, bad: map[string]string{"next_participant_id": "Invalid uuid"}},
		{name: "unknown and ill-typed together", body: `{"next_participant_id":1,"current_participant_id":"x","foo":true}`,
			bad: map[string]string{"next_participant_id": "Expected string", "current_participant_id": "Invalid uuid", "body": "'foo'"}},
		{name: "malformed", body: `{"expected_version":`, bad: map[string]string{"body": "Malformed JSON"}},
		{name: "not JSON", body: `oops`, bad: map[string]string{"body": "Malformed JSON"}},
		{name: "duplicate key", body: `{"expected_version":3,"expected_version":4}`, bad: map[string]string{"expected_version": "Duplicate key"}},
		{name: "array body", body: `[]`, bad: map[string]string{"body": "Expected object, received array"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseSwitch([]byte(tc.body), []byte(tc.ifMatch))
			got := fieldsOf(t, err)
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", got)
				}
				if a.ExpectedVersion != tc.want || a.NextParticipantID != tc.next || a.CurrentParticipantID != tc.current {
					t.Fatalf("got %+v", a)
				}
				return
			}
			if len(got) != len(tc.bad) {
				t.Errorf("want %v, got %v", tc.bad, got)
			}
			for f, want := range tc.bad {
				if !strings.Contains(got[f], want) {
					t.Errorf("field %q: want %q, got %q", f, want, got[f])
				}
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	cases := []struct {
		body, ifMatch string
		want          int64
		bad           string
	}{
		{"", "", 0, ""},
		{`{"expected_version":3}`, "", 3, ""},
		{"", `"9"`, 9, ""},
		{`{"expected_version":3.5}`, "", 0, "expected_version"},
		{`{"version":3}`, "", 0, "body"},
		{`{"expected_version":2}`, `"3"`, 0, "If-Match"},
		{`oops`, "", 0, "body"},
		{`{"expected_version":2,"expected_version":3}`, "", 0, "expected_version"},
	}
	for _, tc := range cases {
		v, err := ParseVersion([]byte(tc.body), []byte(tc.ifMatch))
		got := fieldsOf(t, err)
		if tc.bad == "" && (err != nil || v != tc.want) {
			t.Errorf("%q %q: want %d, got %d %v", tc.body, tc.ifMatch, tc.want, v, got)
		}
		if _, ok := got[tc.bad]; tc.bad != "" && !ok {
			t.Errorf("%q %q: want %s rejected, got %v", tc.body, tc.ifMatch, tc.bad, got)
		}
	}
}

// BenchmarkParseSwitch is the hot path's parse: a full switch body.
func BenchmarkParseSwitch(b *testing.B) {
	body := []byte(`{"expected_version":12,"current_participant_id":"` + p1 + `","next_participant_id":"` + p2 + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSwitch(body, nil); err != nil {
			b.Fatal(err)
		}
	}
}
