package nats

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Pending returns how many events of the event stream the durable consumer
// has not acknowledged yet: those not yet delivered to it plus those
// delivered and awaiting acknowledgement. For the history writer's consumer
// ("history") it is how far the history lags behind the stream. It costs
// one round trip to the JetStream server.
func Pending(ctx context.Context, js jetstream.JetStream, durable string) (uint64, error) {
	c, err := js.Consumer(ctx, StreamName, durable)
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", durable, err)
	}
	info := c.CachedInfo()
	return info.NumPending + uint64(max(info.NumAckPending, 0)), nil
}
