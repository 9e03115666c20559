package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/keyspace"
)

// The audit rule (README.md "Several instances: the audit rule"): whether a
// transition is recorded must not depend on which instance served it. Every
// instance with DATABASE_URL keeps its EVENT_STREAM_MAX in keyspace.Audit,
// with no TTL, before it serves and again every AUDIT_REFRESH; an instance
// without DATABASE_URL reads that key before it serves (before its expiry
// scheduler applies anything, too) and again every AUDIT_REFRESH, and passes
// the cap it found to the scripts. The flag is sticky: once a deployment
// persisted, it records until AUDIT=off is set on every instance or an
// operator deletes the key with no persisting instance left to restore it.
// An instance that started before any persisting one did records nothing
// until its next read: at most AUDIT_REFRESH of transitions.

// wireAudit runs first in wire(), so that this instance's cap is right
// before anything (the expiry scheduler included) runs a script. An
// instance with DATABASE_URL records with its own EVENT_STREAM_MAX from the
// start and announces it in wirePersist, once PostgreSQL did not refuse
// its credentials.
func (a *app) wireAudit(ctx context.Context) error {
	switch {
	case a.cfg.AuditOff:
		a.log.Warn("AUDIT=off: this instance records no audit events; set it on every instance " +
			"sharing this Redis, or the history of a session depends on which instance served it")
		return nil
	case a.cfg.DatabaseURL != "":
		return nil
	}
	if err := a.followAudit(ctx, true); err != nil {
		return errors.New("reading the audit flag " + keyspace.Audit + " from Redis: " + err.Error())
	}
	go every(a.bg, a.cfg.AuditRefresh, func(ctx context.Context) {
		if err := a.followAudit(ctx, false); err != nil && a.bg.Err() == nil {
			a.log.Warn("cannot re-read the audit flag; keeping the last value", "key", keyspace.Audit,
				"event_stream_max", a.engine.EventCap(), "err", err)
		}
	})
	return nil
}

// followAudit sets this instance's cap from the audit flag: the cap it
// holds, or 0 (record nothing) when the key is missing or not a cap. It
// logs the outcome at start and whenever the cap changes.
func (a *app) followAudit(ctx context.Context, start bool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	v, err := a.rdb.Get(ctx, keyspace.Audit).Result()
	var n int64
	bad := false
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return err
	default:
		if n, err = strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
			n, bad = 0, true
		}
	}
	if changed := a.engine.SetEventCap(n); !changed && !start {
		return nil
	}
	switch {
	case bad:
		a.log.Warn("the audit flag holds no stream cap; this instance records nothing", "key", keyspace.Audit, "value", v)
	case n > 0:
		a.log.Info("audit on: this deployment persists, so this instance records every transition too",
			"key", keyspace.Audit, "event_stream_max", n)
	default:
		a.log.Info("audit off: no instance with DATABASE_URL has announced itself on this Redis; "+
			"this instance records nothing until one does", "key", keyspace.Audit, "every", a.cfg.AuditRefresh)
	}
	return nil
}

// announceAudit keeps this persisting instance's cap in the audit flag, so
// that instances without DATABASE_URL record too. No TTL: an instance that
// stops does not turn recording off for the others. Instances should share
// one EVENT_STREAM_MAX; with several, the last writer's holds.
func (a *app) announceAudit(ctx context.Context) error {
	n := a.engine.EventCap()
	if n == 0 { // AUDIT=off or EVENT_STREAM_MAX=0: this instance records nothing itself
		return nil
	}
	v := strconv.FormatInt(n, 10)
	set := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return a.rdb.Set(ctx, keyspace.Audit, v, 0).Err()
	}
	if err := set(ctx); err != nil {
		return errors.New("writing the audit flag " + keyspace.Audit + " to Redis: " + err.Error())
	}
	// Again every AUDIT_REFRESH: a Redis restarted empty gets it back.
	go every(a.bg, a.cfg.AuditRefresh, func(ctx context.Context) {
		if err := set(ctx); err != nil && a.bg.Err() == nil {
			a.log.Warn("cannot refresh the audit flag", "key", keyspace.Audit, "err", err)
		}
	})
	return nil
}

// every runs fn each period until ctx is done.
func every(ctx context.Context, period time.Duration, fn func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
