package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exact returns the nearest-rank quantile of sorted, truncated to the
// microsecond like the histogram's resolution.
func exact(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1].Truncate(time.Microsecond)
}

func TestLoadHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(n int, f func(i int) time.Duration) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = f(i)
		}
		return s
	}
	ms := time.Millisecond
	tests := []struct {
		name   string
		values []time.Duration
		// want, when set, are the exact p50, p90, p99, p99.9 and max.
		want []time.Duration
	}{
		{"one value", gen(1, func(int) time.Duration { return 3 * ms }), []time.Duration{3 * ms, 3 * ms, 3 * ms, 3 * ms, 3 * ms}},
		{"constant 1ms", gen(1000, func(int) time.Duration { return ms }), []time.Duration{ms, ms, ms, ms, ms}},
		{"uniform 1..10000µs", gen(10000, func(i int) time.Duration { return time.Duration(i+1) * time.Microsecond }),
			[]time.Duration{5000 * time.Microsecond, 9000 * time.Microsecond, 9900 * time.Microsecond, 9990 * time.Microsecond, 10 * ms}},
		{"uniform 1ms..100s", gen(20000, func(i int) time.Duration { return time.Duration(i+1) * 5 * ms }),
			[]time.Duration{50 * time.Second, 90 * time.Second, 99 * time.Second, 99.9 * 1000 * ms, 100 * time.Second}},
		{"bimodal 99.5% 1ms, 0.5% 1s", gen(10000, func(i int) time.Duration {
			if i%200 == 0 {
				return time.Second
			}
			return ms
		}), []time.Duration{ms, ms, ms, time.Second, time.Second}},
		{"exponential, mean 2ms", gen(20000, func(int) time.Duration {
			return time.Duration(rng.ExpFloat64() * float64(2*ms))
		}), nil},
		{"log-normal around 5ms", gen(20000, func(int) time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()) * float64(5*ms))
		}), nil},
		{"sub-microsecond", gen(100, func(i int) time.Duration { return time.Duration(i) }), []time.Duration{0, 0, 0, 0, 99}},
	}
	qs := []float64{0.5, 0.9, 0.99, 0.999}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			sorted := slices.Sorted(slices.Values(tt.values))
			if got := h.Count(); got != int64(len(sorted)) {
				t.Errorf("Count = %d, want %d", got, len(sorted))
			}
			if got, want := h.Max(), sorted[len(sorted)-1]; got != want {
				t.Errorf("Max = %v, want %v", got, want)
			}
			var sum time.Duration
			for _, v := range sorted {
				sum += v
			}
			if got, want := h.Mean(), sum/time.Duration(len(sorted)); got != want {
				t.Errorf("Mean = %v, want %v", got, want)
			}
			if got, want := h.Min(), sorted[0].Truncate(time.Microsecond); !within(got, want) {
				t.Errorf("Min = %v, want %v", got, want)
			}
			for i, q := range qs {
				got, want := h.Quantile(q), exact(sorted, q)
				if tt.want != nil && tt.want[i].Truncate(time.Microsecond) != want {
					t.Fatalf("bad table: exact p%v = %v, table says %v", q*100, want, tt.want[i])
				}
				if !within(got, want) {
					t.Errorf("p%v = %v, want %v within 0.1%%", q*100, got, want)
				}
			}
			if got := h.Quantile(1); got > h.Max() || !within(got, h.Max().Truncate(time.Microsecond)) {
				t.Errorf("p100 = %v, want max %v", got, h.Max())
			}
		})
	}
}

// within reports whether got is want or up to 0.1% (one bucket) above it.
func within(got, want time.Duration) bool {
	return got >= want && float64(got-want) <= float64(want)/1024+float64(time.Microsecond)
}

func TestLoadHistogramBuckets(t *testing.T) {
	// Buckets are contiguous and never wider than 1/1024 of their start.
	prevHi := int64(-1)
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo || (lo >= subCount && float64(hi-lo+1) > float64(lo)/1024) {
			t.Fatalf("bucket %d is [%d, %d]: too wide", i, lo, hi)
		}
		for _, v := range []int64{lo, hi, (lo + hi) / 2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
	}
	// Beyond the top, values land in the top bucket and Max stays exact.
	var h Histogram
	huge := 100 * 24 * time.Hour
	h.Record(huge)
	h.Record(-time.Second)
	if got := h.Max(); got != huge {
		t.Errorf("Max = %v, want %v", got, huge)
	}
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("p50 of {-1s, 100d} = %v, want 0 (negative counts as zero)", got)
	}
	if got := h.Quantile(1); got > huge || got < 38*time.Hour {
		t.Errorf("p100 = %v, want the top bucket, at most Max", got)
	}
}

func TestLoadHistogramEmptyConcurrentAndMerge(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Min() != 0 {
		t.Fatal("an empty histogram reports non-zero values")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if got := h.Count(); got != 8000 {
		t.Fatalf("Count = %d after 8000 concurrent records", got)
	}
	if got, want := h.Quantile(0.5), 4000*time.Microsecond; !within(got, want) {
		t.Errorf("p50 = %v, want %v", got, want)
	}
	var m Histogram
	m.Record(time.Hour)
	m.Merge(&h)
	if m.Count() != 8001 || m.Max() != time.Hour {
		t.Errorf("merged: count %d max %v, want 8001 and 1h", m.Count(), m.Max())
	}
	if got, want := m.Quantile(0.5), 4001*time.Microsecond; !within(got, want) {
		t.Errorf("merged p50 = %v, want %v", got, want)
	}
}
