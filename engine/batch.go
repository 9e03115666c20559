package engine

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/synckairos/synckairos/session"
)

// Batch queues transitions on a pipeline, for bulk loads (tests, the bench
// tool) that need many transitions without a round trip each. Its calls go
// out as EVALSHA, so Load must have run on that Redis; their replies are
// left undecoded in the pipeline's commands, and Exec reports the errors.
// Each queued transition is still one atomic script call.
type Batch struct {
	e   *Engine
	ctx context.Context
	p   redis.Pipeliner
}

// Batch returns a Batch that queues on p.
func (s *Engine) Batch(ctx context.Context, p redis.Pipeliner) Batch { return Batch{s, ctx, p} }

func (b Batch) queue(in invocation) { in.sc.EvalSha(b.ctx, b.p, in.keys, in.args...) }

// Create queues a create.
func (b Batch) Create(c *session.Config) { b.queue(b.e.createCall(c, nil)) }

// Start queues a start.
func (b Batch) Start(id string) { b.queue(b.e.simpleCall(b.e.start, id, 0, nil)) }

// Switch queues a switch.
func (b Batch) Switch(id string, a session.SwitchArgs) { b.queue(b.e.switchCall(id, a, nil)) }
