package redis_test

// The client comparison behind docs/REDIS.md. Run with
//
//	UNEVENTFUL_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench . ./redis/
//
// On a shared machine, compare variants within one run (docs/REDIS.md has
// the script that repeats runs and takes the median of the ratios).
//
// The rueidis variants run the package's own ReadModel; the go-redis ones
// do the same work (the same commands, the same decoding) with go-redis.

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/redis"
)

const benchWallets = 1000

// benchParallelism makes RunParallel use 64 goroutines on 2 cores.
func benchParallelism() int { return max(1, 64/runtime.GOMAXPROCS(0)) }

// benchEnv projects benchWallets wallets and marks the domain ready.
func benchEnv(b *testing.B) (*env, []string) {
	e := newEnv(b)
	m := e.open(b)
	ids := make([]string, benchWallets)
	var rs []uneventful.Record
	for i := range ids {
		ids[i] = uneventful.NewID()
		rs = append(rs, history(ids[i], 3)...)
	}
	mustProject(b, m, rs...)
	mustReady(b, m, 0)
	return e, ids
}

// goRedis returns a go-redis client on the test's Redis.
func goRedis(b *testing.B, e *env, f func(*goredis.Options)) *goredis.Client {
	opt, err := goredis.ParseURL(e.url)
	if err != nil {
		b.Fatal(err)
	}
	if f != nil {
		f(opt)
	}
	c := goredis.NewClient(opt)
	b.Cleanup(func() { c.Close() })
	return c
}

// mgetState is State done with go-redis: MGET state and marker, decode
// with the package's decoder.
func mgetState(ctx context.Context, c goredis.Cmdable, prefix, id string) (uneventful.State, error) {
	var s uneventful.State
	vs, err := c.MGet(ctx, prefix+"wallet."+id, prefix+"uneventful:projector:wallet").Result()
	if err != nil {
		return s, err
	}
	if vs[1] == nil {
		return s, fmt.Errorf("not ready")
	}
	str, ok := vs[0].(string)
	if !ok {
		return s, fmt.Errorf("not found")
	}
	err = redis.DecodeState([]byte(str), &s)
	return s, err
}

// getter is a way to read a wallet's state.
type getter struct {
	name string
	open func(b *testing.B, e *env) func(id string) (uneventful.State, error)
}

// getters are the clients compared: the package's ReadModel on rueidis
// (auto-pipelined, and with client-side caching), and go-redis doing the
// same MGET with its connection pool (default size, 10 per core, and 64),
// its autopipeliner and its client-side cache (both experimental APIs).
func getters() []getter {
	ctx := context.Background()
	rueidis := func(opts ...redis.Option) func(b *testing.B, e *env) func(string) (uneventful.State, error) {
		return func(b *testing.B, e *env) func(string) (uneventful.State, error) {
			m := e.open(b, opts...)
			return func(id string) (uneventful.State, error) { return m.State(ctx, "wallet", id) }
		}
	}
	goRedisGet := func(f func(*goredis.Options), auto bool) func(b *testing.B, e *env) func(string) (uneventful.State, error) {
		return func(b *testing.B, e *env) func(string) (uneventful.State, error) {
			var c goredis.Cmdable = goRedis(b, e, f)
			if auto {
				ap, err := c.(*goredis.Client).AutoPipeline()
				if err != nil {
					b.Fatal(err)
				}
				c = ap
			}
			return func(id string) (uneventful.State, error) { return mgetState(ctx, c, e.prefix, id) }
		}
	}
	return []getter{
		{"rueidis", rueidis()},
		{"rueidis-cache", rueidis(redis.WithCache(time.Minute))},
		{"go-redis", goRedisGet(nil, false)},
		{"go-redis-pool64", goRedisGet(func(o *goredis.Options) { o.PoolSize = 64 }, false)},
		{"go-redis-autopipeline", goRedisGet(nil, true)},
		{"go-redis-cache", goRedisGet(func(o *goredis.Options) {
			o.Protocol = 3
			o.ClientSideCacheConfig = &goredis.ClientSideCacheConfig{}
		}, false)},
	}
}

// BenchmarkGetState reads wallet states from 64 goroutines: the
// throughput of a reader process.
func BenchmarkGetState(b *testing.B) {
	e, ids := benchEnv(b)
	for _, g := range getters() {
		b.Run(g.name, func(b *testing.B) {
			get := g.open(b, e)
			var n atomic.Int64
			b.SetParallelism(benchParallelism())
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(n.Add(1)) * 7919
				for pb.Next() {
					i++
					if s, err := get(ids[i%len(ids)]); err != nil || s.Version != 3 {
						b.Errorf("state %v, %v", s.Version, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGetStateSerial reads wallet states one at a time: the latency
// of a lone read.
func BenchmarkGetStateSerial(b *testing.B) {
	e, ids := benchEnv(b)
	for _, g := range getters() {
		b.Run(g.name, func(b *testing.B) {
			get := g.open(b, e)
			b.ResetTimer()
			for i := range b.N {
				if s, err := get(ids[i%len(ids)]); err != nil || s.Version != 3 {
					b.Fatalf("state %v, %v", s.Version, err)
				}
			}
		})
	}
}

// BenchmarkProject projects batches of records, one wallet per record, as
// a writer's group commit does; ns/op is per record.
func BenchmarkProject(b *testing.B) {
	ctx := context.Background()
	for _, batch := range []int{1, 50} {
		b.Run(fmt.Sprintf("rueidis/batch=%d", batch), func(b *testing.B) {
			e := newEnv(b)
			m := e.open(b)
			benchProject(b, batch, func(rs []uneventful.Record) error { return m.Project(ctx, rs) })
		})
		b.Run(fmt.Sprintf("go-redis/batch=%d", batch), func(b *testing.B) {
			e := newEnv(b)
			c := goRedis(b, e, nil)
			sha, err := c.ScriptLoad(ctx, redis.ProjectScript).Result()
			if err != nil {
				b.Fatal(err)
			}
			benchProject(b, batch, func(rs []uneventful.Record) error {
				_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
					for _, r := range rs {
						key := e.prefix + r.State.Stream()
						state, err := redis.EncodeState(r.State)
						if err != nil {
							return err
						}
						event, err := redis.EncodeEvent(&r.Event)
						if err != nil {
							return err
						}
						p.EvalSha(ctx, sha, []string{key, key + ":events"}, strconv.FormatInt(r.State.Version, 10), state, event)
					}
					return nil
				})
				return err
			})
		})
	}
	// Projection cost does not grow with the history.
	for _, hist := range []int{0, 100000} {
		b.Run(fmt.Sprintf("rueidis/history=%d", hist), func(b *testing.B) {
			e := newEnv(b)
			m := e.open(b)
			id := uneventful.NewID()
			rs := history(id, hist+b.N)
			for i := 0; i < hist; i += 1000 {
				mustProject(b, m, rs[i:min(hist, i+1000)]...)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := m.Project(ctx, rs[hist+i:hist+i+1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchProject(b *testing.B, batch int, project func([]uneventful.Record) error) {
	base := make([]uneventful.Record, batch)
	for i := range base {
		base[i] = record(uneventful.NewID(), 1)
	}
	rs := make([]uneventful.Record, batch)
	states := make([]uneventful.State, batch)
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		v := int64(n/batch + 1)
		for i := range rs {
			rs[i], states[i] = base[i], *base[i].State
			rs[i].Event.Version, states[i].Version = v, v
			rs[i].State = &states[i]
		}
		if err := project(rs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAfterWrite projects a new version of a wallet from one
// process and reads it at once from another (a reader that had the old
// version cached), and reports how many reads returned the old version:
// 0 without client-side caching, by contract; the invalidation's delay
// with it.
func BenchmarkReadAfterWrite(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []redis.Option
	}{{"nocache", nil}, {"cache", []redis.Option{redis.WithCache(time.Minute)}}} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnv(b)
			w, r := e.open(b), e.open(b, c.opts...)
			mustReady(b, w, 0)
			id := uneventful.NewID()
			base := record(id, 1)
			mustProject(b, w, base)
			stale := 0
			b.ResetTimer()
			for i := range b.N {
				mustState(b, r, id) // cached, with caching
				rec, st := base, *base.State
				rec.Event.Version, st.Version = int64(i+2), int64(i+2)
				rec.State = &st
				mustProject(b, w, rec)
				if s := mustState(b, r, id); s.Version != st.Version {
					stale++
				}
			}
			b.ReportMetric(100*float64(stale)/float64(b.N), "%stale")
		})
	}
}
