package http

import (
	"context"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/uneventful/uneventful"
)

// BenchmarkInstrument measures what counting a request costs: the same
// query through the router alone and through the router with the metrics
// wrapper, in one run so that both see the same machine.
//
//	go test -run '^$' -bench Instrument ./http/
func BenchmarkInstrument(b *testing.B) {
	d := &uneventful.Domain[int]{
		DomainName: "acct",
		QueryFuncs: map[string]uneventful.Query{
			"balance": func(context.Context, uneventful.Reader, string, url.Values) (any, error) {
				return struct {
					Balance int `json:"balance"`
				}{5}, nil
			},
		},
	}
	s := &Server{Domains: []uneventful.Model{d}, Bus: nopBus{}, Reader: nopReader{}, Logger: slog.New(slog.DiscardHandler)}
	if err := s.Open(); err != nil {
		b.Fatal(err)
	}
	// The router alone, with the query's route, and that router wrapped
	// as routes() wraps it.
	bare := nethttp.NewServeMux()
	bare.Handle(queryPattern("acct", "balance"), s.query(s.domains["acct"], "balance", d.QueryFuncs["balance"]))
	instrumented := s.instrument(bare)
	req := httptest.NewRequest("GET", "/acct/"+uneventful.NewID()+"/balance", nil)
	// Alternate the two, so that a busy machine slows both alike.
	for range 3 {
		for _, bc := range []struct {
			name string
			h    nethttp.Handler
		}{{"router", bare}, {"router+metrics", instrumented}} {
			b.Run(bc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					bc.h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatal(w.Code, w.Body)
					}
				}
			})
		}
	}
}

type nopBus struct{}

func (nopBus) Send(context.Context, *uneventful.Event) (*uneventful.Reply, error) { return nil, nil }

type nopReader struct{}

func (nopReader) State(context.Context, string, string) (uneventful.State, error) {
	return uneventful.State{}, nil
}

func (nopReader) Events(context.Context, string, string, int64, int) ([]uneventful.Event, error) {
	return nil, nil
}
