package redisconn

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestOpen(t *testing.T) {
	seeds := []string{"127.0.0.1:7000", "127.0.0.1:7001"}
	tests := []struct {
		name    string
		c       Config
		cluster bool
		wantErr string
	}{
		{name: "single url", c: Config{URL: "redis://127.0.0.1:6379/2"}},
		{name: "single bare host", c: Config{URL: "127.0.0.1:6379"}},
		{name: "cluster seeds only", c: Config{ClusterAddrs: seeds}, cluster: true},
		{name: "cluster with credentials", c: Config{URL: "redis://u:p@127.0.0.1:7001", ClusterAddrs: seeds}, cluster: true},
		{name: "cluster bad seed", c: Config{ClusterAddrs: []string{"nohost"}}, wantErr: "REDIS_CLUSTER_ADDRS"},
		{name: "cluster db", c: Config{URL: "redis://127.0.0.1:7000/3", ClusterAddrs: seeds}, wantErr: "database 0"},
		{name: "cluster url not a seed", c: Config{URL: "redis://10.0.0.9:7000", ClusterAddrs: seeds}, wantErr: "one of the seeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.Timeout = time.Second
			rdb, err := Open(c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, ok := rdb.(*redis.ClusterClient); ok != tt.cluster {
				t.Fatalf("cluster client = %v, want %v", ok, tt.cluster)
			}
		})
	}
}

func TestClusterOptionsCredentials(t *testing.T) {
	o, err := clusterOptions(Config{URL: "rediss://u:p@127.0.0.1:7000", ClusterAddrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if o.Username != "u" || o.Password != "p" || o.TLSConfig == nil || len(o.Addrs) != 2 || o.MaxRetries != -1 {
		t.Fatalf("options = user %q pass %q tls %v addrs %v retries %d", o.Username, o.Password, o.TLSConfig != nil, o.Addrs, o.MaxRetries)
	}
}

func TestMayHaveRun(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"redis nil", redis.Nil, false},
		{"dial", &net.OpError{Op: "dial", Err: errors.New("refused")}, false},
		{"pool timeout", redis.ErrPoolTimeout, false},
		{"moved", redisErr("MOVED 3999 127.0.0.1:7001"), false},
		{"script error", redisErr("ERR boom"), false},
		{"read reset", &net.OpError{Op: "read", Err: errors.New("reset")}, true},
		{"eof", errors.New("EOF"), true},
	}
	for _, tt := range tests {
		if got := mayHaveRun(tt.err); got != tt.want {
			t.Errorf("%s: mayHaveRun = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNotRun(t *testing.T) {
	for code, want := range map[string]bool{"MOVED 1 a:1": true, "ASK 1 a:1": true, "TRYAGAIN x": true,
		"CLUSTERDOWN x": true, "LOADING x": true, "ERR x": false, "NOSCRIPT x": false} {
		if got := NotRun(redisErr(code)); got != want {
			t.Errorf("NotRun(%q) = %v, want %v", code, got, want)
		}
	}
}

// redisErr is an error reply as go-redis returns one.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}
