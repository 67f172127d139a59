// Package wallet is the wallet domain: credit, debit that never overdraws,
// transfers between wallets, balance and transaction history, built with
// uneventful.Domain.
//
// Money is exact (no binary floating point anywhere): an Amount is an int64
// of minor units, and on the wire it is a plain JSON decimal with at most
// the domain's scale of decimal places, never rounded. The JSON it reads
// and writes:
//
//	command body      POST /wallet/{id}/credit, /debit   {"amount": 12.34}
//	command data      the event log                      {"amount":12.34,"scale":2}
//	transfer body     POST /wallet/{id}/transfer         {"to": "<wallet id>", "amount": 12.34}
//	transfer data     the event log                      {"to":"…","amount":12.34,"scale":2}
//	steps' data       receive, refund, settle            {"transfer":"…","from":"…","amount":12.34,"scale":2} ("to" for refund and settle)
//	state             the state log and read model       {"balance":5.3,"scale":2}, and "in_flight":1 while transfers are unsettled
//	view              merged into command replies        {"balance":5.3}, and "in_flight":1 likewise
//	balance query     GET /wallet/{id}/balance           {"entity_id":"…","version":3,"timestamp":"2025-01-02T03:04:05Z","balance":5.3}
//	transactions      GET /wallet/{id}/transactions?after=0&limit=50
//	                  {"entity_id":"…","transactions":[{"timestamp":"…","source_entity_id":"…","amount":-5,"version":2,"event_id":"…","type":"debit"}],"next_after":null}
//	transfer query    GET /wallet/{id}/transfer?id=<transfer id>
//	                  {"transfer":"…","from":"…","to":"…","amount":5,"status":"pending","version":2,"timestamp":"…"}
//
// A transfer is a process over two wallets, driven by recorded events (see
// NextStep and package process): the source decides the transfer, and the
// amount leaves its balance for its in_flight; then either the target
// receives it and the source settles it (completed), or the target rejects
// it and the source takes it back by a refund (compensated). Its id is the
// event_id of the accepted transfer. Receive, refund and settle
// are sent by the transfer process manager only: over HTTP they are
// refused.
//
// Recorded data carries its scale, so that it reads the same under any
// deployment's scale and JSON alone says what a number means.
//
// Error codes: a bad body gets those of uneventful.DecodeJSON and
// ParseAmount (kind ErrInvalid, HTTP 400), a transfer's also to_required
// and invalid_to, and receive, refund and settle internal_command. Decide
// rejects (kind ErrRejected, recorded) a debit or a transfer above the
// balance with insufficient_funds, which is also errors.Is
// ErrInsufficientFunds, a credit or a receive that would leave no room
// below the largest balance for the balance and the money in flight with
// balance_overflow; too_many_decimals and amount_too_large are rejections too
// when a wallet created under another scale cannot hold the amount
// exactly. A refund or settle of more than is in flight is a conflict
// (ErrConflict, not_in_flight, not recorded): the writer decided it against
// an out-of-date state, and the process manager sends it again. The
// queries answer wallet_not_found and transfer_not_found
// (ErrNotFound), invalid_limit, invalid_after and invalid_transfer_id
// (ErrInvalid).
package wallet
