package main

import (
	"context"
	"log/slog"

	natsgo "github.com/nats-io/nats.go"

	"github.com/uneventful/uneventful"
	uehttp "github.com/uneventful/uneventful/http"
	"github.com/uneventful/uneventful/web"
)

// webRoutes returns the web page's routes for a role's HTTP server: the
// live feed from nc, and the event and state logs from stores (nil in a
// role that has none). The page's live streams end when ctx does, so that
// they do not hold up the HTTP server's graceful shutdown.
func webRoutes(ctx context.Context, nc *natsgo.Conn, stores map[string]uneventful.Store, role string, logger *slog.Logger) []uehttp.Route {
	ui := &web.UI{Feed: recordedFeed(nc), Role: role, Logger: logger.With("role", "web"), Logs: map[string]web.Log{}}
	for _, d := range domains() {
		ui.Domains = append(ui.Domains, d.Name())
		if st, ok := stores[d.Name()]; ok {
			ui.Logs[d.Name()] = st
		}
	}
	context.AfterFunc(ctx, ui.Close)
	return ui.Routes()
}

// recordedFeed subscribes with core NATS to every recorded event; the
// JetStream stream's publishes reach core subscribers too.
func recordedFeed(nc *natsgo.Conn) web.Feed {
	return func(deliver func([]byte)) (func(), error) {
		sub, err := nc.Subscribe("recorded.>", func(m *natsgo.Msg) { deliver(m.Data) })
		if err != nil {
			return nil, err
		}
		return func() { sub.Unsubscribe() }, nil
	}
}
