// Package envconf reads configuration from environment variables, the one
// way every component of the service does. A Reader wraps a getenv (so
// tests pass their own), trims each value, treats an empty one as unset,
// and collects every bad value instead of stopping at the first, so one
// failed start names them all. A bad value yields the default, so a caller
// can keep going and report Err at the end.
package envconf

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables through getenv and collects their problems.
type Reader struct {
	getenv func(string) string
	errs   []error
}

// New returns a Reader over getenv (os.Getenv, or a test's map).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// Str is name's value, trimmed, or def when unset or blank.
func (r *Reader) Str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// Int is name's value as a non-negative integer.
func (r *Reader) Int(name string, def int64) int64 {
	return parse(r, name, def, "a non-negative integer", intIn(0, math.MaxInt64))
}

// IntRange is name's value as an integer in [lo, hi].
func (r *Reader) IntRange(name string, def, lo, hi int64) int64 {
	return parse(r, name, def, "an integer in ["+strconv.FormatInt(lo, 10)+", "+strconv.FormatInt(hi, 10)+"]", intIn(lo, hi))
}

// Bool is name's value as strconv.ParseBool reads it (true, false, 1, 0…).
func (r *Reader) Bool(name string, def bool) bool {
	return parse(r, name, def, "true or false", func(v string) (bool, bool) {
		b, err := strconv.ParseBool(v)
		return b, err == nil
	})
}

// Duration is name's value as a positive time.ParseDuration ("1m", "500ms").
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	return parse(r, name, def, "a positive duration such as 1m or 500ms", func(v string) (time.Duration, bool) {
		d, err := time.ParseDuration(v)
		return d, err == nil && d > 0
	})
}

// parse is the typed readers' one path: def when name is unset, conv's
// value when it takes the trimmed value, else def and "NAME: want <want>,
// got <value>" recorded.
func parse[T any](r *Reader, name string, def T, want string, conv func(string) (T, bool)) T {
	v := r.Str(name, "")
	if v == "" {
		return def
	}
	x, ok := conv(v)
	if !ok {
		r.Invalid(name, "want "+want+", got "+strconv.Quote(v))
		return def
	}
	return x
}

// intIn reads a decimal integer in [lo, hi].
func intIn(lo, hi int64) func(string) (int64, bool) {
	return func(v string) (int64, bool) {
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n >= lo && n <= hi
	}
}

// List is name's comma-separated value, each entry trimmed and empty ones
// dropped, or def when unset. A value of only commas is an empty list.
func (r *Reader) List(name string, def []string) []string {
	v := r.Str(name, "")
	if v == "" {
		return def
	}
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Raw is name's value exactly as set, untrimmed: for secrets, where spaces
// may be part of the value.
func (r *Reader) Raw(name string) string { return r.getenv(name) }

// Invalid records a problem the typed readers cannot see (a range, a
// choice, two variables that disagree) as "NAME: msg".
func (r *Reader) Invalid(name, msg string) {
	r.errs = append(r.errs, errors.New(name+": "+msg))
}

// Err joins every problem recorded so far, in order; nil when there is none.
func (r *Reader) Err() error { return errors.Join(r.errs...) }
