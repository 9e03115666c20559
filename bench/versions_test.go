package main

import (
	"strings"
	"testing"
	"time"
)

func TestVersionCheck(t *testing.T) {
	cases := []struct {
		name      string
		base      int64
		seen      []int64
		final     int64
		faults    []string
		missed    int64
		reorders  int64
		neverRecv int64
	}{
		{"in order", 2, []int64{3, 4, 5}, 5, nil, 0, 0, 0},
		{"gap", 2, []int64{3, 5, 6}, 6, []string{"version_gap"}, 1, 0, 0},
		{"missed first", 2, []int64{4}, 4, []string{"version_gap"}, 1, 0, 0},
		{"duplicate", 2, []int64{3, 3, 4}, 4, []string{"version_reordered"}, 0, 1, 0},
		{"late arrival", 2, []int64{3, 5, 4, 6}, 6, []string{"version_gap", "version_reordered"}, 1, 1, 0},
		{"tail never came", 2, []int64{3, 4}, 7, nil, 3, 0, 3},
		{"nothing at all", 10, nil, 12, nil, 2, 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chk := newVersionCheck(c.base)
			var faults []string
			for _, v := range c.seen {
				if k := chk.see(v); k != "" {
					faults = append(faults, k)
				}
			}
			n := chk.finish(c.final)
			if len(faults) != len(c.faults) {
				t.Fatalf("faults %v, want %v", faults, c.faults)
			}
			for i := range faults {
				if faults[i] != c.faults[i] {
					t.Fatalf("faults %v, want %v", faults, c.faults)
				}
			}
			if chk.missed != c.missed || chk.reorders != c.reorders || n != c.neverRecv {
				t.Errorf("missed %d reorders %d never %d; want %d %d %d", chk.missed, chk.reorders, n, c.missed, c.reorders, c.neverRecv)
			}
		})
	}
}

func TestSessSendsMatchVersions(t *testing.T) {
	s := &sess{base: 2, final: 2}
	t0 := time.Unix(100, 0)
	s.noteSend(4, t0.Add(2*time.Millisecond), 1) // replies may come back out of order
	s.noteSend(3, t0.Add(time.Millisecond), 0)
	if r, ok := s.sendOf(3); !ok || r.rep != 0 || r.due != t0.Add(time.Millisecond).UnixNano() {
		t.Errorf("sendOf(3) = %+v %v", r, ok)
	}
	if r, ok := s.sendOf(4); !ok || r.rep != 1 {
		t.Errorf("sendOf(4) = %+v %v", r, ok)
	}
	for _, v := range []int64{1, 2, 5} {
		if _, ok := s.sendOf(v); ok {
			t.Errorf("sendOf(%d) found, want not yet known", v)
		}
	}
	if s.finalVersion() != 4 {
		t.Errorf("final %d, want 4", s.finalVersion())
	}
}

func TestWireScan(t *testing.T) {
	cases := []struct {
		msg     string
		typ     string
		version int64
		code    string
	}{
		{`{"type":"STATE_UPDATE","sessionId":"x","timestamp":1,"version":17,"state":{"version":17}}`, "STATE_UPDATE", 17, ""},
		{`{"type":"STATE_UPDATE","sessionId":"x","state":{"session_id":"x","version":9}}`, "STATE_UPDATE", 9, ""},
		{`{"type":"CONNECTED","sessionId":"x","timestamp":1}`, "CONNECTED", -1, ""},
		{`{"error":{"code":"SESSION_NOT_FOUND","message":"m"}}`, "", -1, "SESSION_NOT_FOUND"},
		{`{"data":{"version": 3}}`, "", 3, ""},
		{`not json`, "", -1, ""},
		{`{"type":"CONNEC`, "", -1, ""}, // no closing quote
		{`{"error":{"code":"` + strings.Repeat("C", 64) + `"}}`, "", -1, strings.Repeat("C", 64)},
		{`{"error":{"code":"` + strings.Repeat("C", 65) + `"}}`, "", -1, ""}, // longer than any code
	}
	for _, c := range cases {
		b := []byte(c.msg)
		if got := msgType(b); got != c.typ {
			t.Errorf("msgType(%s) = %q, want %q", c.msg, got, c.typ)
		}
		if got := msgVersion(b); got != c.version {
			t.Errorf("msgVersion(%s) = %d, want %d", c.msg, got, c.version)
		}
		if got := errCode(b); got != c.code {
			t.Errorf("errCode(%s) = %q, want %q", c.msg, got, c.code)
		}
	}
}
