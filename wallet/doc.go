// Package wallet is the wallet domain: credit, debit that never overdraws,
// balance and transaction history, built with uneventful.Domain.
//
// Money is exact (no binary floating point anywhere): an Amount is an int64
// of minor units, and on the wire it is a plain JSON decimal with at most
// the domain's scale of decimal places, never rounded. The JSON it reads
// and writes:
//
//	command body      POST /wallet/{id}/credit, /debit   {"amount": 12.34}
//	command data      the event log                      {"amount":12.34,"scale":2}
//	state             the state log and read model       {"balance":5.3,"scale":2}
//	view              merged into command replies        {"balance":5.3}
//	balance query     GET /wallet/{id}/balance           {"entity_id":"…","version":3,"timestamp":"2025-01-02T03:04:05Z","balance":5.3}
//	transactions      GET /wallet/{id}/transactions?after=0&limit=50
//	                  {"entity_id":"…","transactions":[{"timestamp":"…","source_entity_id":"…","amount":-5,"version":2,"event_id":"…","type":"debit"}],"next_after":null}
//
// Recorded data carries its scale, so that it reads the same under any
// deployment's scale and JSON alone says what a number means.
//
// Error codes: a bad body gets those of uneventful.DecodeJSON and
// ParseAmount (kind ErrInvalid, HTTP 400). Decide rejects (kind
// ErrRejected, recorded) a debit above the balance with insufficient_funds,
// which is also errors.Is ErrInsufficientFunds, and a credit past the
// largest balance with balance_overflow; too_many_decimals and
// amount_too_large are rejections too when a wallet created under another
// scale cannot hold the amount exactly. The queries answer
// wallet_not_found (ErrNotFound), invalid_limit and invalid_after
// (ErrInvalid).
package wallet
