package redis_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/redis"
)

// FuzzDecodeState checks that the read path's state decoder agrees with
// encoding/json on any input, and that it takes its fast path on what
// Project writes.
func FuzzDecodeState(f *testing.F) {
	for _, s := range []uneventful.State{
		{Domain: "wallet", EntityID: "2fVrxbGB1P4iL3XmKLpNEtOQK0S", Version: 7, Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), EventID: "2fVrxkEK0bTbUgFvl1OYfF8sTsm", Data: json.RawMessage(`{"balance":"12345678901234567890.01","scale":2}`)},
		{Domain: "w", EntityID: "é", Version: 1 << 62, Timestamp: time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)), Data: json.RawMessage(`null`)},
		{Domain: "w", EntityID: "x", Version: 0, Data: json.RawMessage(`[1,"<&>",{"a":{}}]`)},
	} {
		b, err := redis.EncodeState(&s)
		if err != nil {
			f.Fatal(err)
		}
		var got uneventful.State
		if !redis.ParseState(b, &got) {
			f.Errorf("the fast path does not take %s", b)
		}
		f.Add(b)
	}
	for _, b := range []string{
		`{"version":01,"timestamp":"2025-01-02T03:04:05Z","name":"w","entity_id":"x","event_id":"","data":1}`,
		`{"version":1,"timestamp":"2025-01-02T03:04:05Z","name":"w\u0041","entity_id":"x","event_id":"","data":1}`,
		`{"version":1,"timestamp":"2025-01-02T03:04:05Z","name":"w","entity_id":"x","event_id":"","data":{},"version":2}`,
		`{"version":1,"timestamp":"2025-01-02T03:04:05Z","name":"w","entity_id":"x","event_id":"","data":1} `,
		`{"name":"w","version":1}`,
		`{"version":99999999999999999999,"timestamp":"","name":"","entity_id":"","event_id":"","data":1}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, want uneventful.State
		err := redis.DecodeState(b, &got)
		werr := json.Unmarshal(b, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeState(%q) error %v, json.Unmarshal error %v", b, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeState(%q) = %+v, json.Unmarshal = %+v", b, got, want)
		}
	})
}
