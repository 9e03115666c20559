package fullstate

import "testing"

// TestPackedSlots: the slot reader takes what loose MessagePack decoding
// gives (int64, uint64), JSON's float64 and decimal text, and a malformed
// array is an error, not a state.
func TestPackedSlots(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int64
		ok   bool
	}{
		{int64(-3), -3, true}, {int64(1_765_123_456_789), 1_765_123_456_789, true},
		{uint64(1 << 40), 1 << 40, true}, {uint64(1 << 63), -1 << 63, false},
		{float64(1_765_123_456_789), 1_765_123_456_789, true}, {1.5, 1, false},
		{"1765123456789", 1_765_123_456_789, true}, {"", 0, false}, {nil, 0, false}, {true, 0, false},
	} {
		if got, ok := integer(tc.v); got != tc.want || ok != tc.ok {
			t.Errorf("integer(%#v) = %d, %v; want %d, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	for _, bad := range [][]byte{nil, []byte("x"), []byte("[1,2]"), {0x91, 0x01}} {
		if _, err := RenderHead(bad, bad, 0, ""); err == nil {
			t.Errorf("RenderHead(%q) rendered a state", bad)
		}
	}
}
