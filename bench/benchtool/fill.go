package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
	"github.com/uneventful/uneventful/wallet"
	"github.com/uneventful/uneventful/writer"
)

// fill appends accepted credits of 1 straight to a SQLite event store,
// bypassing HTTP and NATS, to build long histories quickly: -events credits
// to each of -wallets wallets, round robin, -batch to a transaction, with the
// sync off (it is setup, not measurement). The records are what the writer
// would have recorded: decided and applied by the wallet model, with replies
// and request hashes. It marks them relayed, as a store whose events all
// reached the event stream, so that a serve started on it does not publish
// them all again. It writes the wallet ids, one a line, to -ids.
func fill(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	events := fs.Int("events", 1000, "credits per wallet")
	wallets := fs.Int("wallets", 1, "number of wallets")
	batch := fs.Int("batch", 2000, "records per transaction")
	idsFile := fs.String("ids", "", "write the wallet ids to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *events < 1 || *wallets < 1 || *batch < 1 {
		return errors.New("usage: benchtool fill [-events N] [-wallets N] [-batch N] [-ids FILE] STORE.db")
	}
	store, err := sqlite.Open(ctx, fs.Arg(0), sqlite.WithSync(sqlite.SyncOff))
	if err != nil {
		return err
	}
	defer store.Close()

	model := wallet.New(wallet.DefaultScale)
	data, err := model.Parse("credit", []byte(`{"amount": 1}`))
	if err != nil {
		return err
	}
	type entity struct {
		id      string
		state   any
		version int64
	}
	ents := make([]entity, *wallets)
	for i := range ents {
		ents[i] = entity{id: uneventful.NewID(), state: model.Initial()}
	}
	if *idsFile != "" {
		f, err := os.Create(*idsFile)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		for _, e := range ents {
			fmt.Fprintln(w, e.id)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}

	start := time.Now()
	total := *events * *wallets
	records := make([]uneventful.Record, 0, *batch)
	var last int64
	progress := time.Now()
	for n := 0; n < total; n++ {
		ent := &ents[n%len(ents)]
		change, err := model.Decide(ent.state, "credit", data)
		if err != nil {
			return err
		}
		next, err := model.Apply(ent.state, "credit", change)
		if err != nil {
			return err
		}
		stateData, err := model.EncodeState(next)
		if err != nil {
			return err
		}
		view, err := model.View(next)
		if err != nil {
			return err
		}
		ent.state, ent.version = next, ent.version+1
		now := time.Now().UTC()
		e := uneventful.Event{EventID: uneventful.NewID(), Timestamp: now, SourceName: "benchtool fill", SourceID: "fill",
			TypeName: "wallet." + ent.id + ".credit", Domain: "wallet", EntityID: ent.id, Command: "credit",
			Data: data, IdempotencyKey: uneventful.NewID()}
		e.CorrelationID, e.CausationID = e.EventID, e.EventID
		e.RequestHash = writer.RequestHash(&e)
		e.Data, e.Version, e.Outcome = change, ent.version, uneventful.Accepted
		e.Reply = uneventful.MarshalReply(&uneventful.Reply{EventID: e.EventID, Outcome: e.Outcome, Version: e.Version, Timestamp: now, View: view})
		records = append(records, uneventful.Record{Event: e, State: &uneventful.State{Domain: "wallet", EntityID: ent.id,
			Version: ent.version, Timestamp: now, EventID: e.EventID, Data: stateData}})
		if len(records) == *batch || n == total-1 {
			if err := store.Append(ctx, records); err != nil {
				return err
			}
			last = records[len(records)-1].Event.Sequence
			records = records[:0]
			if time.Since(progress) > 10*time.Second {
				progress = time.Now()
				fmt.Fprintf(os.Stderr, "benchtool fill: %d of %d events in %v\n", n+1, total, time.Since(start).Round(time.Second))
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := store.SaveCheckpoint(ctx, "relay", last); err != nil {
		return err
	}
	took := time.Since(start)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"events": total, "wallets": *wallets, "seconds": took.Seconds(), "last_sequence": last})
}
