package memory_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/memory"
)

// BenchmarkState measures a balance read from the in-process read model,
// the read path of `serve`, from as many goroutines as GOMAXPROCS, over
// 1000 wallets, while nothing writes.
func BenchmarkState(b *testing.B) {
	m := memory.New(nil)
	ids := make([]string, 1000)
	records := make([]uneventful.Record, len(ids))
	for i := range ids {
		ids[i] = uneventful.NewID()
		records[i].State = &uneventful.State{Domain: "wallet", EntityID: ids[i], Version: 1, Timestamp: time.Now(),
			Data: json.RawMessage(`{"balance":100,"scale":2}`)}
	}
	if err := m.Project(context.Background(), records); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := m.State(context.Background(), "wallet", ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
