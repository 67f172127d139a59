// Package redis holds the read model on Redis, for the split-roles and
// scale-out deployments in which writers and readers run in different
// processes.
//
// # Keys
//
// Every key starts with ReadModel.Prefix (default ""):
//
//	<domain>.<entity>                  the entity's latest state, a JSON string:
//	                                   {"version":N,"timestamp":"...","name":"<domain>",
//	                                    "entity_id":"...","event_id":"...","data":{...}}
//	<domain>.<entity>:events           sorted set of the entity's accepted events,
//	                                   scored by version; each member is the event's
//	                                   JSON without its reply and request hash
//	uneventful:projector:<domain>      the readiness marker: the store sequence up to
//	                                   which the catch-up projector has rebuilt the
//	                                   domain (a decimal string)
//	uneventful:projector:<domain>:rebuild
//	                                   the token of the rebuild in progress, if any
//
// So `redis-cli GET wallet.<id> | jq` shows a wallet as it always did.
//
// # Writes
//
// Project runs one Lua script per record (EVALSHA, all records of a call
// pipelined in one round trip). The script replaces the state only if the
// new version is higher than the stored one, and adds the event unless the
// set holds an event of that version already, so projection is monotonic,
// idempotent and O(log n) in the entity's history (O(1) in practice: the
// script never reads the history). The script never decodes the JSON it
// stores; amounts and other numbers are kept byte for byte.
//
// # Readiness
//
// The read model is a cache. After a FLUSHALL, an eviction or a restart of
// Redis without persistence, a missing key no longer means "no such
// entity". Reads therefore fetch the domain's readiness marker in the same
// round trip as the data: without the marker they answer an error of kind
// ErrUnavailable with code "read_model_rebuilding" (HTTP 503), never
// ErrNotFound (HTTP 404) and never a stale or partial answer.
//
// The marker is written by the catch-up projector, which rebuilds the read
// model from the store. Because the checkpoint lives in Redis itself, losing
// Redis's data also resets the checkpoint, and the projector starts over
// from sequence 0 by itself. The projector's loop, in outline:
//
//	pos, ready, err := rm.Position(ctx, domain) // (0, false): rebuild from 0
//	for {
//		records, err := store.Records(ctx, pos, n)
//		err = rm.Project(ctx, records)
//		pos = last sequence in records, if any
//		if ready || len(records) < n { // complete up to pos
//			err = rm.MarkReady(ctx, domain, pos)
//			if code "read_model_flushed" { pos, ready, err = rm.Position(ctx, domain); continue }
//			ready = true
//		}
//		wait for news if len(records) < n
//	}
//
// A projector notices a flush by calling Position (or MarkReady, a no-op
// when nothing is new) on every poll; writer.Projector calls Position.
// MarkReady refuses, with
// ErrConflict and code "read_model_flushed", when the data was lost after
// the projector's Position call, so that a projector that was half way
// through cannot mark complete a read model that is not.
//
// # Unavailability
//
// Open does not need Redis to be up. While Redis cannot be reached, answers
// LOADING (restarting with persistence), BUSY or similar, or does not answer
// within ReadModel.Timeout, every call returns an error of kind
// ErrUnavailable with code "read_model_unavailable"; the client reconnects
// by itself once Redis is back.
//
// # Client-side caching
//
// With ReadModel.CacheTTL set, reads are served from a local cache that
// Redis keeps correct through RESP3 client tracking: when a key changes or
// is flushed, Redis tells every client that cached it to drop it. That
// message travels independently of the write's acknowledgement, so for some
// tens of microseconds after a write a cached read may still return the
// previous version: reads converge and stay monotonic within a process, but
// read-your-writes is not guaranteed. It is off by default; see
// docs/REDIS.md for the measurements.
package redis
