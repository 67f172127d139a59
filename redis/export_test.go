package redis

import "github.com/uneventful/uneventful"

// Exported for the benchmarks, which do the same work with go-redis.
var (
	ProjectScript = projectScript
	EncodeState   = func(s *uneventful.State) ([]byte, error) { return encodeState(s) }
	EncodeEvent   = func(e *uneventful.Event) ([]byte, error) { return encodeEvent(e) }
	DecodeState   = decodeState
	ParseState    = parseState
)
