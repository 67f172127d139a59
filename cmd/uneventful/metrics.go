package main

import (
	"context"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful/metrics"
	uenats "github.com/uneventful/uneventful/nats"
)

// watchNATS exports the connection's state, losses and reconnects to m,
// keeping the handlers the connection has.
func watchNATS(nc *natsgo.Conn, m *metrics.Metrics) {
	reconnected, disconnected := nc.Opts.ReconnectedCB, nc.Opts.DisconnectedErrCB
	nc.SetReconnectHandler(func(c *natsgo.Conn) {
		m.NATSReconnected()
		if reconnected != nil {
			reconnected(c)
		}
	})
	nc.SetDisconnectErrHandler(func(c *natsgo.Conn, err error) {
		if err != nil { // nil: closed on purpose
			m.NATSDisconnected()
		}
		if disconnected != nil {
			disconnected(c, err)
		}
	})
	m.NATSConnected(nc.IsConnected)
}

// watchHistory exports how many events of the stream the history writer
// has not recorded yet, asked of JetStream at each scrape.
func watchHistory(js jetstream.JetStream, m *metrics.Metrics) {
	m.HistoryPending(func(ctx context.Context) (uint64, error) {
		return uenats.Pending(ctx, js, "history")
	})
}
