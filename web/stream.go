package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/uneventful/uneventful"
)

// Why a live client was let go.
const (
	goneSlow    = "slow"
	goneClosing = "closing"
)

var (
	errClosed     = errors.New("the server is shutting down")
	errTooMany    = errors.New("too many live feed clients")
	errSubscribe  = errors.New("subscribe to the recorded events")
	heartbeatLine = []byte(": heartbeat\n\n")
)

// client is one live stream: the frames waiting for it, and gone, closed
// when the hub lets it go (why says why).
type client struct {
	ch   chan []byte
	gone chan struct{}
	why  string // set before gone is closed
}

// hub fans the feed out to the live clients. It subscribes to the feed
// while it has at least one client, so that a process nobody watches pays
// nothing per event.
type hub struct {
	feed   Feed
	buffer int
	max    int
	logger *slog.Logger

	mu      sync.Mutex
	clients map[*client]struct{}
	stop    func() // the feed's, while subscribed
	gen     uint64 // which subscription is current
	closed  bool
}

// join adds a client, subscribing to the feed if it is the first.
func (h *hub) join() (*client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errClosed
	}
	if len(h.clients) >= h.max {
		return nil, errTooMany
	}
	if h.stop == nil {
		h.gen++
		gen := h.gen
		stop, err := h.feed(func(b []byte) { h.publish(gen, b) })
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errSubscribe, err)
		}
		h.stop = stop
	}
	c := &client{ch: make(chan []byte, h.buffer), gone: make(chan struct{})}
	h.clients[c] = struct{}{}
	return c, nil
}

// leave removes a client, unsubscribing from the feed if it was the last.
func (h *hub) leave(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	h.unsubscribeIfIdle()
}

func (h *hub) unsubscribeIfIdle() {
	if len(h.clients) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
		h.gen++ // late deliveries of the old subscription are ignored
	}
}

// publish hands an event to every client without waiting: a client whose
// buffer is full is dropped.
func (h *hub) publish(gen uint64, raw []byte) {
	frame, err := eventFrame(raw)
	if err != nil {
		h.logger.Warn("web: live feed: event left out", "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen || h.closed {
		return
	}
	for c := range h.clients {
		select {
		case c.ch <- frame:
		default:
			h.letGo(c, goneSlow)
		}
	}
}

func (h *hub) letGo(c *client, why string) {
	c.why = why
	close(c.gone)
	delete(h.clients, c)
}

// close lets every client go and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		h.letGo(c, goneClosing)
	}
	h.unsubscribeIfIdle()
}

// eventFrame turns a recorded event's JSON into a Server-Sent Events
// message: "id: <event_id>", "event: recorded", "data: <event view>".
func eventFrame(raw []byte) ([]byte, error) {
	var e uneventful.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("decode recorded event: %w", err)
	}
	data, err := json.Marshal(viewOf(&e)) // one line: JSON escapes newlines
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.EventID, err)
	}
	b := make([]byte, 0, len(data)+64)
	b = append(b, "id: "...)
	b = append(b, e.EventID...)
	b = append(b, "\nevent: recorded\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}

// noticeFrame is a message of the stream itself, such as "hello" or
// "dropped", with {"detail": ...} and more fields.
func noticeFrame(event string, fields map[string]any) []byte {
	data, _ := json.Marshal(fields)
	return []byte("event: " + event + "\ndata: " + string(data) + "\n\n")
}

// stream answers GET /events/stream: every recorded event of every domain,
// as it is recorded, as Server-Sent Events, until the client goes, falls
// too far behind, or Close is called.
func (u *UI) stream(w http.ResponseWriter, r *http.Request) {
	if u.Feed == nil {
		writeError(w, r, http.StatusNotImplemented, "not_implemented", "feed_unavailable", "the live feed is not available from "+u.Role)
		return
	}
	c, err := u.hub.join()
	if err != nil {
		detail := "the live feed is unavailable: " + err.Error() + "; retry shortly"
		switch {
		case errors.Is(err, errTooMany):
			detail = fmt.Sprintf("the live feed has its most clients already (%d); retry later", u.MaxClients)
		case errors.Is(err, errSubscribe):
			u.Logger.Error("web: live feed", "err", err)
			detail = "the live feed cannot subscribe to the recorded events right now; retry shortly"
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "unavailable", "feed_unavailable", detail)
		return
	}
	defer u.hub.leave(c)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // proxies: do not buffer
	w.WriteHeader(http.StatusOK)
	// The server's WriteTimeout would cut the stream: each write gets its
	// own deadline instead, and a client that cannot take it is let go.
	write := func(b []byte, flush bool) error {
		rc.SetWriteDeadline(time.Now().Add(u.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		if !flush {
			return nil
		}
		return rc.Flush()
	}
	hello := noticeFrame("hello", map[string]any{"heartbeat_ms": u.Heartbeat.Milliseconds(), "buffer": u.ClientBuffer})
	if err := write(append([]byte("retry: 2000\n\n"), hello...), true); err != nil {
		return
	}
	heartbeat := time.NewTicker(u.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-c.gone:
			var notice []byte
			if c.why == goneSlow {
				u.Logger.Warn("web: live feed client dropped: too slow", "remote", r.RemoteAddr, "buffer", u.ClientBuffer)
				notice = noticeFrame("dropped", map[string]any{"detail": "this client fell more than " + strconv.Itoa(u.ClientBuffer) + " events behind and was dropped; reconnect and reload"})
			} else {
				notice = noticeFrame("closing", map[string]any{"detail": "the server is shutting down"})
			}
			write(notice, true)
			return
		case <-r.Context().Done():
			return
		case frame := <-c.ch:
			// Write what is queued, then flush once.
			err := write(frame, len(c.ch) == 0)
			for n := len(c.ch); err == nil && n > 0; n-- {
				err = write(<-c.ch, n == 1)
			}
			if err != nil {
				return
			}
		case <-heartbeat.C:
			if err := write(heartbeatLine, true); err != nil {
				return
			}
		}
	}
}
