// Package redisconn opens the service's Redis: one server (REDIS_URL) or a
// Redis Cluster (REDIS_CLUSTER_ADDRS), as one redis.UniversalClient that
// every component takes, so nothing else knows which it is.
//
// Both share one rule: a command that may have reached Redis is never sent
// again, because a script that ran and lost its reply would run twice. The
// single client has go-redis's retries off. The Cluster client must still
// follow MOVED and ASK (a slot moved, a replica took over), which go-redis
// retries in the same loop as a lost connection; a hook on every node
// client lets a command go out again only when Redis answered the last try
// with a redirection or an error (so it did not run), or when it never
// left (no connection).
package redisconn

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
)

// Config is how to reach Redis.
type Config struct {
	// URL is REDIS_URL: redis[s]://[user:password@]host:port[/db][?options].
	// With ClusterAddrs it gives only the scheme (rediss: TLS), the
	// credentials and the options, and its host must be one of the seeds.
	URL string
	// ClusterAddrs is REDIS_CLUSTER_ADDRS: host:port seed nodes of a Redis
	// Cluster; empty for a single Redis.
	ClusterAddrs []string
	// Timeout bounds each call's read and write (REDIS_TIMEOUT).
	Timeout time.Duration
}

// Open builds the client; it does not connect (the first command does).
func Open(c Config) (redis.UniversalClient, error) {
	if len(c.ClusterAddrs) > 0 {
		o, err := clusterOptions(c)
		if err != nil {
			return nil, err
		}
		cc := redis.NewClusterClient(o)
		// go-redis reloads its slot map on MOVED or READONLY, else once a
		// minute: a master that died refuses connections and answers
		// neither, so a failed dial asks for the reload (it runs in the
		// background, one at a time), and the next command finds the
		// promoted replica.
		reload := func() { cc.ReloadState(context.Background()) }
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(resendGuard{onDialError: reload}) })
		return cc, nil
	}
	o, err := redis.ParseURL(withScheme(c.URL))
	if err != nil {
		return nil, errors.New("REDIS_URL: " + err.Error())
	}
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	o.ReadTimeout, o.WriteTimeout = c.Timeout, c.Timeout
	return redis.NewClient(o), nil
}

func clusterOptions(c Config) (*redis.ClusterOptions, error) {
	for _, a := range c.ClusterAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, errors.New("REDIS_CLUSTER_ADDRS: want host:port, got " + a)
		}
	}
	o := &redis.ClusterOptions{}
	if c.URL != "" {
		pu, err := url.Parse(withScheme(c.URL))
		if err != nil {
			return nil, errors.New("REDIS_URL: " + err.Error())
		}
		if p := strings.Trim(pu.Path, "/"); p != "" && p != "0" {
			return nil, errors.New("REDIS_URL: a Redis Cluster has database 0 only, got /" + p)
		}
		pu.Path = ""
		if o, err = redis.ParseClusterURL(pu.String()); err != nil {
			return nil, errors.New("REDIS_URL: " + err.Error())
		}
		if !slices.Contains(c.ClusterAddrs, o.Addrs[0]) {
			return nil, errors.New("REDIS_URL: with REDIS_CLUSTER_ADDRS it gives the credentials, TLS and options only, " +
				"and its host:port must be one of the seeds; " + o.Addrs[0] + " is not")
		}
	}
	o.Addrs = slices.Clone(c.ClusterAddrs)
	o.MaxRetries = -1 // node clients: never on their own (resendGuard decides)
	o.ContextTimeoutEnabled = true
	o.ReadTimeout, o.WriteTimeout = c.Timeout, c.Timeout
	return o, nil
}

// withScheme lets REDIS_URL be a plain host:port.
func withScheme(u string) string {
	if !strings.Contains(u, "://") {
		return "redis://" + u
	}
	return u
}

// Addr names what c reaches, for logs and errors.
func (c Config) Addr() string {
	if len(c.ClusterAddrs) > 0 {
		return "cluster " + strings.Join(c.ClusterAddrs, ",")
	}
	if o, err := redis.ParseURL(c.URL); err == nil {
		return o.Addr
	}
	return c.URL
}

// NotSent reports whether err proves a command never reached Redis: no
// connection could be made or taken from the pool.
func NotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) || errors.Is(err, redis.ErrClosed)
}

// NotRun reports whether a Redis error reply says the command did not run
// where it was sent: a Cluster redirection, or a node not serving yet
// (failover, loading). Anything sent again after one of these runs once.
func NotRun(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	code, _, _ := strings.Cut(re.Error(), " ")
	switch code {
	case "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN":
		return true
	}
	return false
}

// resendGuard is on every Cluster node client: the Cluster client's
// retry loop gives a command the error of its last try, so a command whose
// last try may have run (no reply: EOF, reset, a read timeout) is failed
// with that error instead of being sent again. A reply (an error or a
// redirection) or a connection never made lets it go out.
type resendGuard struct {
	onDialError func() // called when a connection could not be made
}

func (g resendGuard) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil && g.onDialError != nil {
			g.onDialError()
		}
		return c, err
	}
}

func (resendGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := cmd.Err(); mayHaveRun(err) {
			return err
		}
		return next(ctx, cmd)
	}
}

func (resendGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if err := c.Err(); mayHaveRun(err) {
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// mayHaveRun: a try failed without a reply after the command could have
// been written.
func mayHaveRun(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || NotSent(err) {
		return false
	}
	var re redis.Error
	return !errors.As(err, &re)
}

// Embedded starts dev mode's in-process Redis (miniredis). It lacks
// sharded Pub/Sub, which the scripts and the relay use (one path for a
// single Redis and a Cluster): on one server SPUBLISH, SSUBSCRIBE and
// SUNSUBSCRIBE deliver exactly as PUBLISH, SUBSCRIBE and UNSUBSCRIBE, so
// they run as those, from clients and from scripts alike.
func Embedded() (*miniredis.Miniredis, error) {
	m, err := miniredis.Run()
	if err != nil {
		return nil, err
	}
	srv := m.Server()
	for sharded, classic := range map[string]string{"SPUBLISH": "PUBLISH", "SSUBSCRIBE": "SUBSCRIBE", "SUNSUBSCRIBE": "UNSUBSCRIBE"} {
		err := srv.Register(sharded, func(c *server.Peer, _ string, args []string) {
			srv.Dispatch(c, append([]string{classic}, args...))
		})
		if err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}
