package persist

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// cursor is where a group stands on a stream, read atomically (MULTI).
type cursor struct {
	lastDelivered string // the group's last-delivered-id
	pending       int64  // entries delivered and not acknowledged
	lowestPending string // the smallest of them, when pending > 0
	now           time.Time
}

func (w *Worker) cursor(ctx context.Context, stream string) (cursor, bool, error) {
	var groups *redis.XInfoGroupsCmd
	var pend *redis.XPendingCmd
	var now *redis.TimeCmd
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		groups = p.XInfoGroups(ctx, stream)
		pend = p.XPending(ctx, stream, w.cfg.Group)
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") || strings.HasPrefix(err.Error(), "ERR no such key") {
			return cursor{}, false, nil
		}
		return cursor{}, false, err
	}
	c := cursor{now: now.Val()}
	found := false
	for _, g := range groups.Val() {
		if g.Name == w.cfg.Group {
			c.lastDelivered, found = g.LastDeliveredID, true
		}
	}
	if p := pend.Val(); p != nil && p.Count > 0 {
		c.pending, c.lowestPending = p.Count, p.Lower
	}
	return c, found, nil
}

// trim drops what the group has acknowledged, and nothing else. Every entry
// below the lowest pending one was delivered (lowest pending <= last
// delivered) and is no longer pending, so it was acknowledged; with nothing
// pending, everything up to last-delivered was. Entries added or delivered
// after the MULTI have larger ids than last-delivered, so they stay too.
// This assumes the persist group is the stream's only consumer group.
func (w *Worker) trim(ctx context.Context, stream string) error {
	c, ok, err := w.cursor(ctx, stream)
	if err != nil || !ok {
		return err
	}
	minID := c.lowestPending
	if c.pending == 0 {
		minID = nextID(c.lastDelivered)
	}
	if minID == "" {
		return nil
	}
	return w.rdb.XTrimMinID(ctx, stream, minID).Err()
}

// nextID is the smallest stream id greater than id ("ms-seq").
func nextID(id string) string {
	msPart, seqPart, ok := strings.Cut(id, "-")
	if !ok {
		return ""
	}
	seq, err := strconv.ParseUint(seqPart, 10, 64)
	if err != nil {
		return ""
	}
	if seq == ^uint64(0) {
		ms, err := strconv.ParseUint(msPart, 10, 64)
		if err != nil {
			return ""
		}
		return strconv.FormatUint(ms+1, 10) + "-0"
	}
	return msPart + "-" + strconv.FormatUint(seq+1, 10)
}

// idMS is the millisecond part of a stream id: Redis time when it was added.
func idMS(id string) int64 {
	msPart, _, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseInt(msPart, 10, 64)
	return ms
}

// oldestUnacked returns the age of the oldest entry of stream the group has
// not acknowledged: the lowest pending one, else the first undelivered one.
func (w *Worker) oldestUnacked(ctx context.Context, stream string) (time.Duration, error) {
	c, ok, err := w.cursor(ctx, stream)
	if err != nil || !ok {
		return 0, err
	}
	id := c.lowestPending
	if c.pending == 0 {
		msgs, err := w.rdb.XRangeN(ctx, stream, "("+c.lastDelivered, "+", 1).Result()
		if err != nil || len(msgs) == 0 {
			return 0, err
		}
		id = msgs[0].ID
	}
	age := c.now.UnixMilli() - idMS(id)
	if age < 0 {
		age = 0
	}
	return time.Duration(age) * time.Millisecond, nil
}

// measure sets the lag gauge to the oldest unacknowledged entry's age over
// all streams.
func (w *Worker) measure(ctx context.Context) error {
	var worst time.Duration
	for _, s := range w.cfg.Streams {
		age, err := w.oldestUnacked(ctx, s)
		if err != nil {
			return err
		}
		worst = max(worst, age)
	}
	w.lagMS.Store(worst.Milliseconds())
	return nil
}

func (w *Worker) measureLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.LagEvery)
	defer t.Stop()
	for {
		if err := w.measure(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("persist: measuring consumer lag failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
