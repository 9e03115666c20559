package keyspace

import (
	"strings"
	"testing"
)

// crc16 is Redis Cluster's key hash (CRC16-XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot computes a key's Redis Cluster slot, honouring {hash tags}.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func TestSlotHelper(t *testing.T) {
	// known values from the Redis Cluster specification and CLUSTER KEYSLOT
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16 = %x", got)
	}
	if slot("foo") != 12182 || slot("{user1000}.following") != slot("{user1000}.followers") {
		t.Fatalf("slot helper is wrong")
	}
}

func TestFor(t *testing.T) {
	id := "6f1c2b9e-7a41-4c55-9d0e-3b2f4a5c6d7a"
	k := For(id)
	want := Session{
		Meta:         "sk:{a}:session:" + id,
		Parts:        "sk:{a}:session:" + id + ":parts",
		Index:        "sk:{a}:session:" + id + ":index",
		Stream:       "sk:{a}:events",
		Lives:        "sk:{a}:lives",
		StateChannel: "sk:{a}:session:" + id + ":state",
		MsgChannel:   "sk:{a}:session:" + id + ":msg",
	}
	if k != want {
		t.Errorf("For(%s) = %+v", id, k)
	}
	// every key and channel of a session lives in one Cluster slot
	s := slot(k.Meta)
	for _, key := range []string{k.Parts, k.Index, k.Stream, k.Lives, k.StateChannel, k.MsgChannel} {
		if slot(key) != s {
			t.Errorf("%s is in slot %d, meta in %d", key, slot(key), s)
		}
	}
}

func TestShardOf(t *testing.T) {
	cases := []struct {
		id   string
		want int
	}{
		{"00000000-0000-4000-8000-000000000000", 0},
		{"00000000-0000-4000-8000-000000000009", 9},
		{"00000000-0000-4000-8000-00000000000f", 15},
		{"00000000-0000-4000-8000-00000000000F", 15}, // upper case maps like lower case
		{"00000000-0000-4000-8000-00000000000B", 11},
		{"", 0},
		{"not-hex-z", 0},
	}
	for _, c := range cases {
		if got := ShardOf(c.id); got != c.want {
			t.Errorf("ShardOf(%q) = %d, want %d", c.id, got, c.want)
		}
	}
	if For("x-A").Stream != For("x-a").Stream {
		t.Error("case changes the shard")
	}
}

func TestStreams(t *testing.T) {
	ss := Streams()
	if len(ss) != Shards || Shards != 16 {
		t.Fatalf("%d streams", len(ss))
	}
	seen := map[string]bool{}
	for i, s := range ss {
		if s != Stream(i) || s != "sk:"+Tag(i)+":events" || seen[s] {
			t.Errorf("stream %d = %s", i, s)
		}
		seen[s] = true
	}
	if Tag(10) != "{a}" || Tag(0) != "{0}" {
		t.Errorf("Tag(10) = %s, Tag(0) = %s", Tag(10), Tag(0))
	}
	// the shards spread over different slots
	slots := map[uint16]bool{}
	for _, s := range ss {
		slots[slot(s)] = true
	}
	if len(slots) != Shards {
		t.Errorf("16 shards share %d slots", len(slots))
	}
}
