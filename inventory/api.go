package inventory

import (
	"encoding/json"

	"github.com/uneventful/uneventful"
)

// The inventory's HTTP API for the OpenAPI document (GET /openapi.json).
// Keep it true to the code: the tests of cmd/uneventful check real answers
// against it.
var (
	quantitySchema    = `{"type":"integer","minimum":1,"description":"A whole number of items, 1 or more."}`
	reservationSchema = `{"type":"string","pattern":"^[A-Za-z0-9_.:-]{1,64}$","description":"The reservation's id, chosen by the client."}`
	viewSchema        = `{"type":"object","required":["available","reserved"],"properties":{"available":{"type":"integer","minimum":0},"reserved":{"type":"integer","minimum":0}}}`

	api = &uneventful.API{
		Commands: map[string]uneventful.Operation{
			Add: {
				Summary: "Put a quantity of the product in stock.",
				Body:    json.RawMessage(`{"type":"object","required":["quantity"],"additionalProperties":false,"properties":{"quantity":` + quantitySchema + `}}`),
			},
			Reserve: {
				Summary: "Set a quantity of the available stock aside under a reservation id; rejected (409 insufficient_stock) if that much is not available.",
				Body:    json.RawMessage(`{"type":"object","required":["quantity","reservation"],"additionalProperties":false,"properties":{"quantity":` + quantitySchema + `,"reservation":` + reservationSchema + `}}`),
			},
			Release: {
				Summary: "Return a reservation's quantity to the available stock.",
				Body:    json.RawMessage(`{"type":"object","required":["reservation"],"additionalProperties":false,"properties":{"reservation":` + reservationSchema + `}}`),
			},
		},
		View: json.RawMessage(viewSchema),
		Queries: map[string]uneventful.Operation{
			"stock": {
				Summary: "The product's available and reserved stock.",
				Answer: json.RawMessage(`{"type":"object","required":["entity_id","version","timestamp","available","reserved"],"properties":{` +
					`"entity_id":{"type":"string"},"version":{"type":"integer","minimum":1},"timestamp":{"type":"string","format":"date-time"},` +
					`"available":{"type":"integer","minimum":0},"reserved":{"type":"integer","minimum":0}}}`),
			},
		},
	}
)
