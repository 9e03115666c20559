package persist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
)

// Config tunes a Worker; zero values take the defaults in brackets.
type Config struct {
	Group    string   // consumer group ["persist"]
	Consumer string   // this instance's consumer name [host-pid-random]
	Streams  []string // [keyspace.Streams()]
	Count    int64    // entries per stream per read [1000]
	// Lanes is the number of concurrent read-write loops, each owning a
	// share of the streams [2]; PostgreSQL writes that many batches at once.
	Lanes int
	// Poll is the wait after a read that found every stream of a lane
	// empty: the most an event waits while the worker is idle, and the
	// shutdown latency then [100ms]. Each idle lane reads its streams
	// 1/Poll times a second (docs/ARCHITECTURE.md "Persistence and expiry per shard").
	Poll         time.Duration
	ClaimIdle    time.Duration // entries pending this long belong to a dead worker [30s]
	ClaimEvery   time.Duration // how often to look for them [5s]
	LagEvery     time.Duration // how often to measure consumer lag [1s]
	RetryMax     time.Duration // cap of the backoff while PostgreSQL fails [5s]
	WriteTimeout time.Duration // one batch's transaction [10s]
	// CrashAt, when set, is asked at each Stage of every batch; true stops
	// the worker there as a crash would: Run returns ErrCrashed, leaving
	// the transaction abandoned or the entries pending for the next worker.
	// For crash-recovery tests and drills; a deployment leaves it nil.
	CrashAt func(Stage) bool
}

// Stage is a point of a batch where Config.CrashAt may stop a worker.
type Stage string

const (
	BeforeCommit Stage = "before_commit" // the transaction is written, not committed
	AfterCommit  Stage = "after_commit"  // committed; the entries are not acknowledged yet
)

// crashAt reports whether Config.CrashAt stops the worker at s.
func (c *Config) crashAt(s Stage) bool { return c.CrashAt != nil && c.CrashAt(s) }

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Group == "" {
		c.Group = "persist"
	}
	if c.Consumer == "" {
		c.Consumer = ConsumerName()
	}
	if len(c.Streams) == 0 {
		c.Streams = keyspace.Streams()
	}
	if c.Count <= 0 {
		c.Count = 1000
	}
	if c.Lanes <= 0 {
		c.Lanes = 2
	}
	c.Lanes = min(c.Lanes, len(c.Streams))
	def(&c.Poll, 100*time.Millisecond)
	def(&c.ClaimIdle, 30*time.Second)
	def(&c.ClaimEvery, 5*time.Second)
	def(&c.LagEvery, time.Second)
	def(&c.RetryMax, 5*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
}

// ConsumerName is unique per process: host, pid and a random suffix, so two
// instances (or a restart) never share a pending list.
func ConsumerName() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// DeadLetterStream is where undecodable entries of stream go; it shares
// the stream's hash tag, so it lives in the same Cluster slot.
func DeadLetterStream(stream string) string { return stream + ":dead" }

// ErrCrashed is what Run returns when Config.CrashAt stopped the worker.
var ErrCrashed = errors.New("persist: stopped by Config.CrashAt")

// Worker moves events from the shard streams into PostgreSQL.
type Worker struct {
	rdb  redis.Cmdable
	pool *pgxpool.Pool
	log  *slog.Logger
	cfg  Config
	m    *Metrics

	lastErr atomic.Pointer[error] // the last write's error; nil after a success
	lagMS   atomic.Int64
}

// NewWorker builds a worker; Run starts it.
func NewWorker(rdb redis.Cmdable, pool *pgxpool.Pool, log *slog.Logger, cfg Config) *Worker {
	cfg.defaults()
	w := &Worker{rdb: rdb, pool: pool, log: log.With("consumer", cfg.Consumer), cfg: cfg}
	w.m = newMetrics(w)
	return w
}

// Metrics returns the worker's metric set, for main to register.
func (w *Worker) Metrics() *Metrics { return w.m }

// Err reports why persistence is degraded: the error of the last batch
// write if it failed, nil once a write succeeds again.
func (w *Worker) Err() error {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Lag is the age of the oldest entry not yet acknowledged, over all
// streams, as last measured.
func (w *Worker) Lag() time.Duration { return time.Duration(w.lagMS.Load()) * time.Millisecond }

// Run consumes until ctx is done. A batch in flight when ctx ends is still
// written and acknowledged (the drain); only a PostgreSQL that keeps failing
// past then leaves its entries pending, for the next worker to claim.
func (w *Worker) Run(ctx context.Context) error {
	for {
		err := w.ensureGroups(ctx)
		if err == nil {
			break
		}
		w.log.Warn("persist: cannot create consumer groups", "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
	var wg sync.WaitGroup
	lagCtx, stopLag := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); w.measureLoop(lagCtx) }()
	defer func() { stopLag(); wg.Wait() }()

	// Lanes split the streams, so each stream (and each session) is written
	// by one lane only, and PostgreSQL works on two batches at once.
	lctx, stopLanes := context.WithCancel(ctx)
	defer stopLanes()
	crashed := make(chan error, w.cfg.Lanes)
	var lanes sync.WaitGroup
	for i := 0; i < w.cfg.Lanes; i++ {
		var streams []string
		for j := i; j < len(w.cfg.Streams); j += w.cfg.Lanes {
			streams = append(streams, w.cfg.Streams[j])
		}
		ln := lane{streams: streams, consumer: w.cfg.Consumer + "-" + strconv.Itoa(i)}
		lanes.Add(1)
		go func() {
			defer lanes.Done()
			if err := w.runLane(lctx, ln); err != nil {
				crashed <- err
				stopLanes()
			}
		}()
	}
	lanes.Wait()
	select {
	case err := <-crashed:
		return err
	default:
		return nil
	}
}

// lane is one read-write loop over its share of the streams.
type lane struct {
	streams  []string
	consumer string
}

func (w *Worker) runLane(ctx context.Context, ln lane) error {
	nextClaim := time.Now()
	for ctx.Err() == nil {
		var batch []redis.XStream
		var err error
		if !time.Now().Before(nextClaim) {
			batch, err = w.claim(ctx, ln)
			nextClaim = time.Now().Add(w.cfg.ClaimEvery)
		}
		if err == nil && len(batch) == 0 {
			batch, err = w.read(ctx, ln)
		}
		if err != nil {
			w.log.Warn("persist: reading the streams failed", "err", err)
		}
		// What was read is pending on this lane already: write it even
		// when another stream's read failed.
		if err := w.process(ctx, batch); errors.Is(err, ErrCrashed) {
			return err
		}
		switch {
		case err != nil:
			sleep(ctx, time.Second)
		case len(batch) == 0:
			sleep(ctx, w.cfg.Poll)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (w *Worker) ensureGroups(ctx context.Context) error {
	for _, s := range w.cfg.Streams {
		// "0": a new group starts with what the stream already holds.
		err := w.rdb.XGroupCreateMkStream(ctx, s, w.cfg.Group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return err
		}
	}
	return nil
}

// read takes the new entries of every stream of the lane: one XREADGROUP
// per stream, so each names one Cluster slot, all in one pipeline, which a
// Cluster client splits per node (one round trip per node). None blocks: a
// blocking read waits on one slot only, and would hold a pooled connection
// per stream; runLane waits Poll instead when all were empty. The
// pipeline is not cancelled with ctx: entries Redis hands out are pending
// on this consumer from then on, so no reply may be dropped half-way.
// A stream whose read failed is skipped this round; the others' entries
// are returned with the error.
func (w *Worker) read(ctx context.Context, ln lane) ([]redis.XStream, error) {
	ctx = context.WithoutCancel(ctx)
	cmds := make([]*redis.XStreamSliceCmd, len(ln.streams))
	// Per-command errors are read below; Pipelined's is the first of them.
	_, _ = w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range ln.streams {
			cmds[i] = p.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: w.cfg.Group, Consumer: ln.consumer, Streams: []string{s, ">"}, Count: w.cfg.Count, Block: -1,
			})
		}
		return nil
	})
	var out []redis.XStream
	var failed error
	regroup := false
	for _, c := range cmds {
		res, err := c.Result()
		switch {
		case err == nil:
			out = append(out, res...)
		case errors.Is(err, redis.Nil):
		case strings.HasPrefix(err.Error(), "NOGROUP"):
			regroup = true // someone deleted a stream (and its group with it)
		case failed == nil:
			failed = err
		}
	}
	if regroup && failed == nil {
		failed = w.ensureGroups(ctx)
	}
	return out, failed
}

// claim takes over entries other consumers left pending longer than
// ClaimIdle: their worker died between read and ack.
func (w *Worker) claim(ctx context.Context, ln lane) ([]redis.XStream, error) {
	var out []redis.XStream
	for _, s := range ln.streams {
		msgs, _, err := w.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s, Group: w.cfg.Group, Consumer: ln.consumer,
			MinIdle: w.cfg.ClaimIdle, Start: "0-0", Count: w.cfg.Count,
		}).Result()
		if err != nil {
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				continue
			}
			return nil, err
		}
		if len(msgs) > 0 {
			w.log.Info("persist: claimed entries of a dead consumer", "stream", s, "entries", len(msgs))
			out = append(out, redis.XStream{Stream: s, Messages: msgs})
		}
		w.forgetConsumers(ctx, s, ln.consumer)
	}
	return out, nil
}

// forgetConsumers deletes consumers that own nothing and were idle for ten
// claim periods: every restart adds names, and nothing else removes them.
// A live one deleted by mistake loses nothing (it owns no entries) and
// comes back with its next read.
func (w *Worker) forgetConsumers(ctx context.Context, stream, self string) {
	cs, err := w.rdb.XInfoConsumers(ctx, stream, w.cfg.Group).Result()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Name != self && c.Pending == 0 && c.Idle > 10*w.cfg.ClaimIdle {
			w.rdb.XGroupDelConsumer(ctx, stream, w.cfg.Group, c.Name)
		}
	}
}

// process writes one batch, then dead-letters what could not be decoded,
// then acknowledges everything and trims. The write is retried while
// PostgreSQL fails; entries stay pending meanwhile, so nothing is lost.
func (w *Worker) process(ctx context.Context, batch []redis.XStream) error {
	n := 0
	for _, s := range batch {
		n += len(s.Messages)
	}
	if n == 0 {
		return nil
	}
	evs := make([]event, 0, n)
	var dead []deadLetter
	for _, s := range batch {
		for _, m := range s.Messages {
			e, err := decode(s.Stream, m)
			if err != nil {
				dead = append(dead, deadLetter{stream: s.Stream, msg: m, reason: err.Error()})
				continue
			}
			e.values = m.Values
			evs = append(evs, e)
		}
	}
	if len(evs) > 0 {
		bad, err := w.writeAll(ctx, evs)
		if err != nil {
			return err
		}
		dead = append(dead, bad...)
	}
	if w.cfg.crashAt(AfterCommit) {
		return ErrCrashed
	}
	// From here on ctx may be done: the drain finishes what was committed.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.WriteTimeout)
	defer cancel()
	if err := w.deadLetter(actx, dead); err != nil {
		w.log.Error("persist: dead-lettering failed; the entries stay pending", "err", err)
		return err
	}
	if err := w.ack(actx, batch); err != nil {
		// Not fatal: the rows are in, and a redelivery is skipped by the unique key.
		w.log.Warn("persist: XACK failed; entries will be redelivered", "err", err)
		return err
	}
	for _, s := range batch {
		if err := w.trim(actx, s.Stream); err != nil {
			w.log.Warn("persist: trimming failed", "stream", s.Stream, "err", err)
		}
	}
	return nil
}

// writeAll writes evs; when PostgreSQL rejects the data itself (an entry
// that decoded but holds, say, a date it cannot read), it splits the batch
// in halves until the culprits are single events, which it returns to be
// dead-lettered, so one bad entry never blocks the stream.
func (w *Worker) writeAll(ctx context.Context, evs []event) ([]deadLetter, error) {
	err := w.write(ctx, evs)
	if !isDataError(err) {
		return nil, err
	}
	if len(evs) == 1 {
		e := &evs[0]
		return []deadLetter{{stream: e.stream, msg: redis.XMessage{ID: e.id, Values: e.values}, reason: err.Error()}}, nil
	}
	mid := len(evs) / 2
	bad, err := w.writeAll(ctx, evs[:mid])
	if err != nil {
		return nil, err
	}
	more, err := w.writeAll(ctx, evs[mid:])
	return append(bad, more...), err
}

// isDataError: PostgreSQL refused the values (SQLSTATE class 22, data
// exception), which no retry can fix.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22")
}

// write retries with backoff until the batch commits, or until ctx is done
// and a try has failed (shutdown while PostgreSQL is down). A data error is
// returned at once.
func (w *Worker) write(ctx context.Context, evs []event) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.WriteTimeout)
		res, err := writeBatch(wctx, w.pool, evs, &w.cfg)
		cancel()
		if errors.Is(err, ErrCrashed) || isDataError(err) {
			return err
		}
		if err == nil {
			w.lastErr.Store(nil)
			w.m.batchSize.Update(float64(len(evs)))
			w.m.batchSeconds.UpdateDuration(start)
			landed := int(res.current + res.superseded + res.clashes)
			w.m.written.Add(landed)
			w.m.duplicates.Add(len(evs) - landed)
			w.m.superseded.Add(int(res.superseded + res.clashes))
			if res.clashes > 0 {
				w.log.Warn("persist: events whose version was recorded from another stream entry kept in sync_events_superseded (events from before lives)",
					"events", res.clashes)
			}
			if res.lives > 0 {
				w.m.lives.Add(res.lives)
				w.log.Info("persist: session ids created again; their earlier lives moved to sync_events_superseded",
					"lives", res.lives, "rows_moved", res.moved)
			}
			return nil
		}
		w.lastErr.Store(&err)
		w.m.writeErrors.Inc()
		w.log.Warn("persist: writing a batch failed; will retry", "events", len(evs), "err", err)
		if !sleep(ctx, backoff) {
			return err
		}
		backoff = min(2*backoff, w.cfg.RetryMax)
	}
}

func (w *Worker) ack(ctx context.Context, batch []redis.XStream) error {
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range batch {
			ids := make([]string, len(s.Messages))
			for i, m := range s.Messages {
				ids[i] = m.ID
			}
			if len(ids) > 0 {
				p.XAck(ctx, s.Stream, w.cfg.Group, ids...)
			}
		}
		return nil
	})
	return err
}

type deadLetter struct {
	stream string
	msg    redis.XMessage
	reason string
}

func (w *Worker) deadLetter(ctx context.Context, dead []deadLetter) error {
	for _, d := range dead {
		vals := make([]any, 0, 2*len(d.msg.Values)+4)
		vals = append(vals, "source_id", d.msg.ID, "reason", d.reason)
		for k, v := range d.msg.Values {
			vals = append(vals, "f:"+k, v)
		}
		if err := w.rdb.XAdd(ctx, &redis.XAddArgs{Stream: DeadLetterStream(d.stream), Values: vals}).Err(); err != nil {
			return err
		}
		w.m.deadLetters.Inc()
		w.log.Error("persist: undecodable event sent to the dead-letter stream",
			"stream", d.stream, "id", d.msg.ID, "reason", d.reason, "dead_letter_stream", DeadLetterStream(d.stream))
	}
	return nil
}
