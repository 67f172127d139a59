// Package web is uneventful's web page: open or create a wallet, see its
// balance, transactions, event log (accepted and rejected attempts, with
// reasons) and state log, credit and debit it, and watch a live feed of
// every recorded event of every domain. The page is plain HTML, CSS and
// JavaScript embedded in the binary (no build step, nothing loaded from
// another host), served beside the JSON API by package http:
//
//	GET /                           the page
//	GET /ui/{file}                  its script and style sheet
//	GET /ksuid                      {"id": "<a new KSUID>"}, to name a new wallet
//	GET /events/stream              the live feed, as Server-Sent Events
//	GET /{domain}/{id}/events       the entity's event log, paged with after (a sequence) and limit
//	GET /{domain}/{id}/states       the entity's state log, paged with after (a version) and limit
//
// The JSON API's own routes are unchanged; the page uses them for balances,
// transactions and commands.
//
// The event log and state log are read from the event store (UI.Logs). The
// split `server` role has no store, only the read model, which holds
// accepted events alone; there those two routes answer 501 with a note that
// says where to read the logs, and the page shows the note.
//
// The live feed relays every recorded event (UI.Feed: in cmd, a core NATS
// subscription to recorded.>, made while at least one page is watching). Each
// client has a bounded buffer; a client too slow to keep up is dropped with
// a last "dropped" message, and the page reconnects and reloads what it
// shows. A comment line every Heartbeat keeps proxies from closing an idle
// stream and lets the page notice a dead one. Close ends every stream, for
// a graceful shutdown. The feed is live only: what happens while a page is
// disconnected is not replayed (the history log has it).
//
// With API keys (http.Server.APIKeys), the data routes need the read scope
// like the queries; the page asks for a key when the server says it needs
// one and sends it as Authorization: Bearer, also for the live feed, which
// is why the page reads the stream with fetch rather than EventSource.
package web
