package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/process"
	"github.com/uneventful/uneventful/wallet"
)

// transfersName names the transfer process manager: its durable consumer
// and the prefix of its idempotency keys. Changing it would make the
// manager handle every transfer in the stream again under new keys.
const transfersName = "transfers"

// startTransfers starts the transfer process manager next to the writer of
// domain, if domain is the wallet's: it reads the wallet's recorded events
// from the event stream through the durable consumer "transfers", shared
// by every wallet writer, and sends the steps of each transfer over bus.
// stop stops it and waits; events it was handling are redelivered.
func startTransfers(domain string, js jetstream.JetStream, bus uneventful.Bus, logger *slog.Logger) (stop func()) {
	if domain != wallet.Name {
		return func() {}
	}
	m := &process.Manager{
		Name:    transfersName,
		JS:      js,
		Bus:     bus,
		Subject: "recorded." + wallet.Name + ".>",
		React:   transferSteps,
		Logger:  logger.With("role", "transfers"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx); err != nil {
			logger.Error("transfer process manager", "err", err)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// transferSteps is the transfer process, wallet.NextStep, as the commands
// of a process manager: the step's command names it, and its correlation
// id is the transfer's.
func transferSteps(e *uneventful.Event) ([]process.Command, error) {
	s, err := wallet.NextStep(e)
	if s == nil || err != nil {
		return nil, err
	}
	return []process.Command{{Step: s.Command, Domain: wallet.Name, EntityID: s.EntityID, Command: s.Command, Data: s.Data, CorrelationID: s.Transfer}}, nil
}
