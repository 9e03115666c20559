package wsrelay

import "testing"

// TestStampOrder: a session's states are ordered by life, then version; a
// session from before lives (life 0) starts afresh at version 1.
func TestStampOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b stamp
		want bool
	}{
		{"next version", stamp{3, 5}, stamp{3, 4}, true},
		{"same state", stamp{3, 5}, stamp{3, 5}, false},
		{"older version", stamp{3, 4}, stamp{3, 5}, false},
		{"a create of the same life again", stamp{3, 1}, stamp{3, 5}, false},
		{"a newer life at a lower version", stamp{4, 1}, stamp{3, 9}, true},
		{"an older life at a higher version", stamp{2, 9}, stamp{3, 1}, false},
		{"before lives: a create of a reused id", stamp{0, 1}, stamp{0, 7}, true},
		{"before lives: an older version", stamp{0, 6}, stamp{0, 7}, false},
		{"a stamped life after one from before", stamp{1, 1}, stamp{0, 7}, true},
		{"the first state", stamp{1, 1}, stamp{}, true},
	}
	for _, tc := range tests {
		if got := tc.a.after(tc.b); got != tc.want {
			t.Errorf("%s: %v.after(%v) = %v, want %v", tc.name, tc.a, tc.b, got, tc.want)
		}
	}
	msg := stateMessage("STATE_SYNC", "s", 1, stamp{7, 42}, []byte(`{"version":42,"life":7,"metadata":{"version":1}}`))
	if got := stampOf(msg); got != (stamp{7, 42}) {
		t.Errorf("stampOf(%s) = %v", msg, got)
	}
}
