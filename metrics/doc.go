// Package metrics exports what uneventful does as Prometheus metrics, on a
// registry private to the process (never prometheus.DefaultRegisterer), with
// the Go runtime and process collectors. Every name starts with
// "uneventful_"; docs/METRICS.md lists them with their type, labels and
// meaning.
//
// A process makes one Metrics with New and hands it to the parts it runs:
// http.Server.Metrics (which serves GET /metrics and counts requests and
// commands), a writer.Writer, writer.Projector and writer.Relay through
// Domain (an implementation of writer.Observer), and the NATS connection's
// handlers through NATSReconnected and NATSDisconnected.
//
// Every label has a bounded set of values: routes are the server's patterns
// (never the raw path, so never an entity id), domains and commands are the
// registered ones, and reason codes are capped per command. Recording on
// the hot path allocates nothing once a series exists.
package metrics
