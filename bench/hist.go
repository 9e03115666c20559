package main

import (
	"math"
	"math/bits"
	"time"
)

// Hist is a log-linear latency histogram: exact below 256 ns, then 128
// sub-buckets per power of two, so any reported percentile is within 0.8%
// of the true sample. It keeps memory fixed however long a run lasts, which
// a 5-minute soak at thousands of samples a second needs.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

const (
	histExact   = 256 // values below this have their own bucket
	histSub     = 128 // sub-buckets per power of two above that
	histBuckets = histExact + 56*histSub
)

func bucketOf(v int64) int {
	if v < histExact {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 8 // v>>shift is in [128, 255]
	return histExact + (shift-1)*histSub + int(uint64(v)>>shift) - histSub
}

// bucketMid returns the middle of bucket i, the value reported for it.
func bucketMid(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	i -= histExact
	shift := i/histSub + 1
	lo := int64(i%histSub+histSub) << shift
	return lo + (int64(1)<<shift)/2
}

// Record adds one latency sample.
func (h *Hist) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[bucketOf(v)]++
}

// Merge adds every sample of o to h.
func (h *Hist) Merge(o *Hist) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count returns the number of samples.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest sample, exactly.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean sample.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank method:
// the smallest sample with at least q of the samples at or below it.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketMid(i)
			// The exact extremes beat a bucket's middle.
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Latency is the summary of a histogram that reports and baselines carry.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// Summary returns the percentiles the tool reports.
func (h *Hist) Summary() Latency {
	return Latency{
		Count:  h.n,
		MeanMS: ms(h.Mean()),
		P50MS:  ms(h.Quantile(0.50)),
		P90MS:  ms(h.Quantile(0.90)),
		P99MS:  ms(h.Quantile(0.99)),
		P999MS: ms(h.Quantile(0.999)),
		MaxMS:  ms(h.Max()),
	}
}
