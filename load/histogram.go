package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear, like HdrHistogram with three significant
// digits: values below 2048 µs each have their own bucket; above that, every
// power of two is split into 1024 equal buckets, so a bucket is never wider
// than 1/1024 of its lower bound (under 0.1%).
const (
	subBits    = 11
	subCount   = 1 << subBits // exact buckets: 0 .. 2047 µs
	halfCount  = subCount / 2 // buckets per power of two above that
	maxShift   = 26           // up to 2^37 µs, about 38 hours
	numBuckets = subCount + maxShift*halfCount
)

// Histogram counts durations at microsecond resolution in log-linear
// buckets, so that its percentiles are within 0.1% of the exact ones in a
// fixed 230 KB, however many values it holds. Durations longer than about
// 38 hours count in the top bucket; Max stays exact.
//
// Record may be called from many goroutines at once; the other methods may
// too, and see a recent state. The zero value is ready to use. A Histogram
// must not be copied after first use.
type Histogram struct {
	counts [numBuckets]atomic.Int64
	n      atomic.Int64
	sum    atomic.Int64 // nanoseconds
	max    atomic.Int64 // nanoseconds
}

// bucketOf returns the bucket of a value in microseconds.
func bucketOf(us int64) int {
	if us < subCount {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - subBits // >= 1
	if shift > maxShift {
		return numBuckets - 1
	}
	return subCount + (shift-1)*halfCount + int(us>>shift) - halfCount
}

// bucketRange returns the smallest and largest value, in microseconds, that
// bucket i counts.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	k := i - subCount
	shift := k/halfCount + 1
	m := int64(k%halfCount + halfCount)
	return m << shift, (m+1)<<shift - 1
}

// Record counts one duration; a negative one counts as zero.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(int64(d/time.Microsecond))].Add(1)
	h.n.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() int64 { return h.n.Load() }

// Max returns the longest duration recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the recorded durations, exactly.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Min returns the shortest duration recorded, to the microsecond below 2 ms
// and within 0.1% above.
func (h *Histogram) Min() time.Duration {
	for i := range h.counts {
		if h.counts[i].Load() > 0 {
			lo, _ := bucketRange(i)
			return time.Duration(lo) * time.Microsecond
		}
	}
	return 0
}

// Quantile returns the duration that a fraction q (0 < q <= 1) of the
// recorded durations do not exceed: the nearest-rank percentile, reported as
// the upper bound of its bucket so that it never understates a latency by
// more than a microsecond, and never above Max. It returns 0 when the
// histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketRange(i)
			return min(time.Duration(hi)*time.Microsecond, h.Max())
		}
	}
	return h.Max() // Record raced with this walk
}

// Merge adds every duration counted in o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for m := o.max.Load(); ; {
		cur := h.max.Load()
		if m <= cur || h.max.CompareAndSwap(cur, m) {
			return
		}
	}
}
