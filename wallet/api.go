package wallet

import (
	"encoding/json"
	"fmt"

	"github.com/uneventful/uneventful"
)

// describe returns the wallet's HTTP API for the OpenAPI document, at the
// given scale. Keep it true to the code: the tests of cmd/uneventful check
// real answers against it.
func describe(scale int) *uneventful.API {
	amount := fmt.Sprintf(`{"type":"number","exclusiveMinimum":0,"description":"An exact decimal with at most %d decimal places, e.g. 5 or 0.3: a JSON number, never a string or an exponent; it is never rounded."}`, scale)
	money := func(desc string) string { return fmt.Sprintf(`{"type":"number","description":%q}`, desc) }
	positive := func(desc string) string { return fmt.Sprintf(`{"type":"number","minimum":0,"description":%q}`, desc) }
	id := `{"type":"string","pattern":"^[0-9A-Za-z]{27}$"}`
	internal := uneventful.Operation{
		Summary: "A step of a transfer, sent by the transfer process: refused over HTTP (400 internal_command).",
	}
	return &uneventful.API{
		Commands: map[string]uneventful.Operation{
			Credit: {
				Summary: "Add money to the wallet.",
				Body:    raw(`{"type":"object","required":["amount"],"additionalProperties":false,"properties":{"amount":%s}}`, amount),
			},
			Debit: {
				Summary: "Take money from the wallet; rejected (409 insufficient_funds) if the balance does not cover it.",
				Body:    raw(`{"type":"object","required":["amount"],"additionalProperties":false,"properties":{"amount":%s}}`, amount),
			},
			Transfer: {
				Summary: "Send money to another wallet; rejected (409 insufficient_funds) if the balance does not cover it. The transfer's id is the answer's event_id.",
				Body:    raw(`{"type":"object","required":["to","amount"],"additionalProperties":false,"properties":{"to":%s,"amount":%s}}`, id, amount),
			},
			Receive: internal,
			Refund:  internal,
			Settle:  internal,
		},
		View: raw(`{"type":"object","required":["balance"],"properties":{"balance":%s,"in_flight":%s}}`,
			positive("The balance, an exact decimal; never negative."),
			positive("Money sent by transfers not settled yet; absent when none.")),
		Queries: map[string]uneventful.Operation{
			"balance": {
				Summary: "The wallet's balance and its version.",
				Answer: raw(`{"type":"object","required":["entity_id","version","timestamp","balance"],"properties":{"entity_id":%s,"version":{"type":"integer","minimum":1},"timestamp":{"type":"string","format":"date-time"},"balance":%s,"in_flight":%s}}`,
					id, positive("The balance, an exact decimal; never negative."), positive("Money sent by transfers not settled yet; absent when none.")),
			},
			"transactions": {
				Summary: "The wallet's accepted changes, oldest first, a page at a time.",
				Params: []uneventful.Param{
					{Name: "limit", Description: fmt.Sprintf("The most changes in the page, 1 to %d; default %d.", maxLimit, defaultLimit), Schema: raw(`{"type":"integer","minimum":1,"maximum":%d}`, maxLimit)},
					{Name: "after", Description: "Only changes with a higher version: the next_after of the previous page; default 0.", Schema: raw(`{"type":"integer","minimum":0}`)},
				},
				Answer: raw(`{"type":"object","required":["entity_id","transactions","next_after"],"properties":{
					"entity_id":%s,
					"transactions":{"type":"array","items":{"type":"object","required":["timestamp","source_entity_id","amount","version","event_id","type"],"properties":{
						"timestamp":{"type":"string","format":"date-time"},
						"source_entity_id":{"type":"string","description":"The counterparty: the other wallet of a transfer, the wallet itself for a credit or debit."},
						"amount":%s,
						"version":{"type":"integer","minimum":1},
						"event_id":{"type":"string"},
						"type":{"type":"string","description":"The command: credit, debit, transfer, receive, refund or settle."},
						"transfer":{"type":"string","description":"The id of the transfer the change belongs to."}}}},
					"next_after":{"type":["integer","null"],"description":"The after of the next page; null when this page is the last."}}}`,
					id, money("Negative for a debit and a transfer; 0 for a settle.")),
			},
			"transfer": {
				Summary: "The status of a transfer made from this wallet.",
				Params: []uneventful.Param{
					{Name: "id", Description: "The transfer's id: the event_id of its answer.", Required: true, Schema: json.RawMessage(id)},
				},
				Answer: raw(`{"type":"object","required":["transfer","from","to","amount","status","version","timestamp"],"properties":{
					"transfer":%s,"from":%s,"to":%s,"amount":%s,
					"status":{"enum":["pending","completed","compensated"]},
					"version":{"type":"integer","minimum":1},
					"timestamp":{"type":"string","format":"date-time"}}}`,
					id, id, id, money("The amount sent.")),
			},
		},
	}
}

// raw formats a schema.
func raw(format string, args ...any) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(format, args...))
}
