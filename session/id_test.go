package session

import (
	"strings"
	"testing"
)

func TestNormalizeID(t *testing.T) {
	const sid = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{sid, sid, true},
		{strings.ToUpper(sid), sid, true},
		{"6F1C2D3E-4a5b-4C6D-8e7f-90A1B2C3D4E5", sid, true},
		{"", "", false},
		{sid + "0", "", false},
		{sid[:35], "", false},
		{strings.Replace(sid, "-", "x", 1), "", false},
		{strings.Replace(sid, "6", "g", 1), "", false},
		{"{" + sid[1:], "", false},
	} {
		got, ok := NormalizeID(c.in)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("NormalizeID(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
		if IsUUID(c.in) != c.ok {
			t.Errorf("IsUUID(%q) = %v", c.in, !c.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { NormalizeID(sid) }); n != 0 {
		t.Errorf("a lower-case id costs %v allocations, want 0", n)
	}
}
