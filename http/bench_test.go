package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/uneventful/uneventful"
	uhttp "github.com/uneventful/uneventful/http"
)

func benchServer(b *testing.B) (*uhttp.Server, *fakeBus, *fakeReader) {
	m := newAcct()
	reader := newFakeReader()
	bus := newFakeBus(m, reader)
	s := &uhttp.Server{Domains: []uneventful.Model{m}, Bus: bus, Reader: reader, Logger: slog.New(slog.DiscardHandler)}
	if err := s.Open(); err != nil {
		b.Fatal(err)
	}
	return s, bus, reader
}

// BenchmarkQuery measures GET /acct/{id}/balance through the handler
// against a bare handler that writes the same bytes and headers, both in
// process (ResponseRecorder: the ratio is the router's, validation's and
// encoding's cost) and over loopback TCP with keep-alive (the ratio a
// client sees).
func BenchmarkQuery(b *testing.B) {
	s, _, reader := benchServer(b)
	id := uneventful.NewID()
	reader.project(uneventful.State{Domain: "acct", EntityID: id, Version: 1, Timestamp: time.Now(), Data: json.RawMessage(`{"balance":5}`)})
	path := "/acct/" + id + "/balance"
	want := `{"balance":5}` + "\n"

	bare := nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(200)
		w.Write([]byte(want))
	})
	for _, bc := range []struct {
		name string
		h    nethttp.Handler
	}{{"bare", bare}, {"server", s.Handler()}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", path, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			w := httptest.NewRecorder()
			bc.h.ServeHTTP(w, req)
			if w.Body.String() != want {
				b.Fatalf("answer %q, want %q", w.Body, want)
			}
		})
	}
	for _, bc := range []struct {
		name string
		h    nethttp.Handler
	}{{"loopback-bare", bare}, {"loopback-server", s.Handler()}} {
		b.Run(bc.name, func(b *testing.B) {
			ts := httptest.NewServer(bc.h)
			defer ts.Close()
			client := ts.Client()
			url := ts.URL + path
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				res, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.ReadFull(res.Body, buf[:len(want)])
				res.Body.Close()
				if res.StatusCode != 200 || string(buf[:n]) != want {
					b.Fatalf("%d %q", res.StatusCode, buf[:n])
				}
			}
		})
	}
}

// BenchmarkCommand measures POST /acct/{id}/add through the handler with
// a bus that decides in memory: the server's own cost of a command.
func BenchmarkCommand(b *testing.B) {
	s, _, _ := benchServer(b)
	h := s.Handler()
	path := "/acct/" + uneventful.NewID() + "/add"
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", path, strings.NewReader(`{"amount": 1}`))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req.WithContext(context.Background()))
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
