package main

import (
	"math"
	"math/rand"
	"sort"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted samples.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestHistQuantilesWithinBucketError(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cases := []struct {
		name string
		gen  func() int64
		n    int
	}{
		{"uniform µs", func() int64 { return rng.Int63n(int64(5 * time.Millisecond)) }, 10000},
		{"long tail", func() int64 { return int64(math.Exp(rng.NormFloat64()*2+13)) + 1000 }, 20000},
		{"tiny", func() int64 { return rng.Int63n(300) }, 1000},
		{"one sample", func() int64 { return 123456789 }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Hist
			xs := make([]int64, c.n)
			for i := range xs {
				xs[i] = c.gen()
				h.Record(time.Duration(xs[i]))
			}
			sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				want := exactQuantile(xs, q)
				got := int64(h.Quantile(q))
				if d := math.Abs(float64(got-want)) / math.Max(float64(want), 1); d > 0.01 && math.Abs(float64(got-want)) > 1 {
					t.Errorf("q%.3f = %d, exact %d (off by %.2f%%)", q, got, want, d*100)
				}
			}
			if h.Max() != time.Duration(xs[len(xs)-1]) {
				t.Errorf("max = %d, want %d", h.Max(), xs[len(xs)-1])
			}
			if h.Count() != uint64(c.n) {
				t.Errorf("count = %d, want %d", h.Count(), c.n)
			}
		})
	}
}

func TestHistBucketsCoverEveryValue(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, 257, 1000, 1 << 20, 1<<40 + 12345, math.MaxInt64} {
		b := bucketOf(v)
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, b)
		}
		mid := bucketMid(b)
		if v >= 256 {
			if d := math.Abs(float64(mid)-float64(v)) / float64(v); d > 1.0/128 {
				t.Errorf("bucketMid(bucketOf(%d)) = %d, %.3f%% off", v, mid, d*100)
			}
		} else if mid != v {
			t.Errorf("bucketMid(bucketOf(%d)) = %d, want exact", v, mid)
		}
	}
	// Buckets are ordered: a larger value never lands in an earlier bucket.
	prev := 0
	for v := int64(0); v < 1<<22; v += 37 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, b, prev)
		}
		prev = b
	}
}

func TestHistMerge(t *testing.T) {
	var a, b, all Hist
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a.Summary() != all.Summary() {
		t.Errorf("merged %+v, want %+v", a.Summary(), all.Summary())
	}
	var empty Hist
	if empty.Quantile(0.99) != 0 || empty.Summary().Count != 0 {
		t.Error("empty histogram should report zeros")
	}
}
