package keyspace

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/servertest"
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
	want := Session{ // 0x7a % 64 = 0x3a
		Meta:         "sk:{3a}:session:" + id,
		Parts:        "sk:{3a}:session:" + id + ":parts",
		Index:        "sk:{3a}:session:" + id + ":index",
		Stream:       "sk:{3a}:events",
		Lives:        "sk:{3a}:lives",
		StateChannel: "sk:{3a}:session:" + id + ":state",
		MsgChannel:   "sk:{3a}:session:" + id + ":msg",
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
		{"00000000-0000-4000-8000-00000000003f", 63},
		{"00000000-0000-4000-8000-000000000040", 0},  // modulo 64
		{"00000000-0000-4000-8000-0000000000ff", 63}, // 255 % 64
		{"00000000-0000-4000-8000-0000000000C1", 1},  // upper case maps like lower case
		{"00000000-0000-4000-8000-00000000002B", 43},
		{"", 0},
		{"a", 0},
		{"not-hex-z", 0},
		{"xyz-z1", 0}, // the second-to-last is not hex
	}
	for _, c := range cases {
		if got := ShardOf(c.id); got != c.want {
			t.Errorf("ShardOf(%q) = %d, want %d", c.id, got, c.want)
		}
	}
	if For("x-1A").Stream != For("x-1a").Stream {
		t.Error("case changes the shard")
	}
}

func TestStreams(t *testing.T) {
	ss := Streams()
	if len(ss) != Shards || Shards != 64 {
		t.Fatalf("%d streams", len(ss))
	}
	seen := map[string]bool{}
	for i, s := range ss {
		if s != Stream(i) || s != "sk:"+Tag(i)+":events" || seen[s] {
			t.Errorf("stream %d = %s", i, s)
		}
		seen[s] = true
	}
	for shard, want := range map[int]string{0: "{00}", 10: "{0a}", 58: "{3a}", 63: "{3f}"} {
		if got := Tag(shard); got != want {
			t.Errorf("Tag(%d) = %s, want %s", shard, got, want)
		}
	}
	// the shards spread over different slots
	slots := map[uint16]bool{}
	for _, s := range ss {
		slots[slot(s)] = true
	}
	if len(slots) != Shards {
		t.Errorf("%d shards share %d slots", Shards, len(slots))
	}
}

// TestShardsSpread: on a Cluster made by `redis-cli --cluster create`,
// whose masters hold equal slot ranges, each master holds its share of the
// shards within ±15% (issue 14: with the default count, each of 3 masters
// carries a third of the load ± 15%).
func TestShardsSpread(t *testing.T) {
	for _, masters := range []int{3, 4} {
		per := make([]int, masters)
		for _, s := range Streams() {
			per[min(int(slot(s))*masters/16384, masters-1)]++
		}
		fair := float64(Shards) / float64(masters)
		for m, n := range per {
			if float64(n) < 0.85*fair || float64(n) > 1.15*fair {
				t.Errorf("%d masters: master %d holds %d of %d shards (%v), want %.1f ± 15%%", masters, m, n, Shards, per, fair)
			}
		}
	}
}

func TestCheckShards(t *testing.T) {
	t.Parallel()
	addr, _ := servertest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	cases := []struct {
		name    string
		plant   map[string]string // keys present before the check
		wantErr string            // "" for accepted
		old     []string          // the old layout's keys it reports
	}{
		{"empty Redis: recorded", nil, "", nil},
		{"same count recorded", map[string]string{ShardsKey: "64"}, "", nil},
		{"another count recorded", map[string]string{ShardsKey: "16"}, `laid out in "16" shards`, nil},
		{"old layout's stream and deadlines", map[string]string{"sk:{a}:events": "x", "sk:{f}:deadlines": "x"}, "",
			[]string{"sk:{a}:events", "sk:{f}:deadlines"}},
		{"a new-layout key only", map[string]string{"sk:{0a}:events": "x"}, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			for k, v := range c.plant {
				rdb.Set(ctx, k, v, 0)
			}
			old, err := CheckShards(ctx, rdb)
			if !slices.Equal(old, c.old) {
				t.Errorf("old layout = %v, want %v", old, c.old)
			}
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
			case c.wantErr == "":
				if got := rdb.Get(ctx, ShardsKey).Val(); got != "64" {
					t.Fatalf("%s = %q after the check, want 64", ShardsKey, got)
				}
			default:
				if got := rdb.Get(ctx, ShardsKey).Val(); got != c.plant[ShardsKey] {
					t.Fatalf("a refused check wrote %s = %q", ShardsKey, got)
				}
			}
		})
	}
}
