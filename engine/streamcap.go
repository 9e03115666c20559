package engine

import (
	"strconv"
	"sync/atomic"
)

// streamCap is the audit stream cap the scripts get as ARGV[3] ("0": record
// nothing). Scripts reads it on every call, so the audit flag can turn
// recording on or off in a running instance without a new script contract:
// go-redis writes an encoding.BinaryMarshaler argument as its bytes.
type streamCap struct {
	n   atomic.Int64
	arg atomic.Pointer[[]byte]
}

func newStreamCap(n int64) *streamCap {
	c := &streamCap{}
	c.Set(n)
	return c
}

// Set stores n and reports whether it differs from the cap before.
func (c *streamCap) Set(n int64) (changed bool) {
	b := strconv.AppendInt(nil, n, 10)
	c.arg.Store(&b)
	return c.n.Swap(n) != n
}

// Load returns the cap the next script call gets.
func (c *streamCap) Load() int64 { return c.n.Load() }

// MarshalBinary is the script argument. The bytes are never modified
// (Set stores new ones), and go-redis copies them into its write buffer.
func (c *streamCap) MarshalBinary() ([]byte, error) { return *c.arg.Load(), nil }
