// Package load is an HTTP load generator: it sends requests to one URL from
// a number of workers and measures throughput, the latency distribution,
// status codes and transport errors.
//
// It has two modes.
//
// Closed loop (the default): each worker sends a request, waits for the whole
// response, optionally sleeps Config.Period, and sends the next. Throughput
// is whatever the server sustains with Workers requests in flight. Latency
// is measured from the moment a request is sent. This is the classic
// benchmark loop, and it suffers from coordinated omission: when the server
// stalls, the workers stall with it and stop sending, so the requests that
// real users would have sent during the stall are never sent and never
// measured. A 1-second stall among 10,000 quick requests shows up as one
// slow sample, and the percentiles look fine.
//
// Open loop (Config.Rate > 0): requests follow a fixed timetable, request i
// being due at start + i/Rate, whatever happened to the ones before it.
// Workers only caps the number of requests in flight. A request that comes
// due while every worker is busy waits for one, and its latency is measured
// from the time it was due, not from when a worker got round to sending it,
// so time spent waiting behind a stalled server counts, as it would for the
// users who kept arriving. A 1-second stall then shows up in every request
// that was due during it, and the upper percentiles say so. (A request whose
// worker was idle, waiting for its due time, is measured from its send: a
// timer wakes up to a millisecond late, and that delay is the generator's,
// not the server's.) The result also reports the service time, always from
// the send, and how many requests went out late; if throughput falls short
// of Rate, add workers.
//
// Latencies go into a Histogram: log-linear buckets at microsecond
// resolution with three significant digits (HdrHistogram's layout), in fixed
// memory however long the run.
//
// All workers share one http.Transport that keeps Workers idle connections
// per host, and every response body is read to the end, so each worker keeps
// reusing one keep-alive connection: 64 workers make 64 connections. It
// speaks HTTP/1.1 only, and ignores proxy settings in the environment.
//
// For the wallet service, the URL may contain {wallet}: Run makes
// Config.Wallets new wallet ids and sends each request to one of them,
// spread uniformly or by a Zipf law (a few hot wallets), and can credit each
// wallet once before the run so that debits can succeed.
package load
