package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/uneventful/uneventful"
	"github.com/uneventful/uneventful/sqlite"
)

// tail prints the event, state or history log, and with --follow keeps
// printing what is appended.
func (m *Main) tail(ctx context.Context, which string, args []string) error {
	fs := m.flags(which)
	dataDir := fs.String("data", "./data", "directory the service keeps its SQLite files in")
	entity := fs.String("entity", "", "only this entity, as <domain>.<id> (e.g. wallet.2B...)")
	follow := fs.Bool("follow", false, "keep printing new entries as they are recorded")
	asJSON := fs.Bool("json", false, "print one JSON object per line, for jq")
	if err := fs.parse(args); err != nil {
		return err
	}
	var domain, id string
	if *entity != "" {
		var err error
		if domain, id, err = uneventful.SplitStream(*entity); err != nil {
			return err
		}
	}
	out := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	print := func(v any, line string) {
		if *asJSON {
			b, _ := json.Marshal(v)
			fmt.Fprintf(m.Stdout, "%s\n", b)
			return
		}
		fmt.Fprintln(out, line)
	}
	next, closer, err := m.source(ctx, which, *dataDir, domain, id)
	if err != nil {
		return err
	}
	defer closer()
	for {
		n, err := next(ctx, print)
		if err != nil {
			return err
		}
		out.Flush()
		if n == page {
			continue // more to print now
		}
		if !*follow {
			return nil
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

type printer func(v any, line string)

// page is how many entries tail reads at a time.
const page = 500

// source opens the log to read and returns a function that prints the next
// page of it and says how many entries it printed.
func (m *Main) source(ctx context.Context, which, dataDir, domain, id string) (func(context.Context, printer) (int, error), func(), error) {
	if which == "history" {
		path := filepath.Join(dataDir, "history.db")
		if err := exists(path); err != nil {
			return nil, nil, err
		}
		h, err := sqlite.OpenHistoryReadOnly(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		var after int64
		return func(ctx context.Context, p printer) (int, error) {
			events, err := h.History(ctx, after, page)
			for i := range events {
				e := &events[i]
				if id != "" && (e.Domain != domain || e.EntityID != id) {
					continue
				}
				p(e, eventLine(e))
			}
			if len(events) > 0 {
				after = events[len(events)-1].Sequence
			}
			return len(events), err
		}, func() { h.Close() }, nil
	}
	if domain == "" {
		domain = "wallet"
	}
	path := filepath.Join(dataDir, domain+".db")
	if err := exists(path); err != nil {
		return nil, nil, err
	}
	st, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	if which == "states" {
		if id == "" {
			st.Close()
			return nil, nil, fmt.Errorf("states needs --entity <domain>.<id>")
		}
		var after int64
		return func(ctx context.Context, p printer) (int, error) {
			states, err := st.States(ctx, domain, id, after, page)
			for i := range states {
				s := &states[i]
				p(s, fmt.Sprintf("%s\t%s.%s\tv%d\t%s\t%s", s.Timestamp.Format(time.RFC3339Nano), s.Domain, s.EntityID, s.Version, s.EventID, s.Data))
				after = s.Version
			}
			return len(states), err
		}, func() { st.Close() }, nil
	}
	var seq, version int64
	return func(ctx context.Context, p printer) (int, error) {
		// Rejected attempts share the version they were decided against,
		// so a stream is paged by both: the version keeps it on its index,
		// the sequence skips what was printed.
		q := uneventful.EventQuery{Domain: domain, EntityID: id, AfterSequence: seq, Limit: page}
		if id != "" {
			q.AfterVersion = max(version-1, 0)
		}
		events, err := st.Events(ctx, q)
		for i := range events {
			e := &events[i]
			p(e, eventLine(e))
			seq, version = e.Sequence, e.Version
		}
		return len(events), err
	}, func() { st.Close() }, nil
}

func eventLine(e *uneventful.Event) string {
	outcome := string(e.Outcome)
	if e.Reason != "" {
		outcome += " (" + e.Reason + ")"
	}
	return fmt.Sprintf("%d\t%s\t%s\tv%d\t%s\t%s\t%s", e.Sequence, e.Timestamp.Format(time.RFC3339Nano), e.TypeName, e.Version, outcome, e.Data, e.EventID)
}

func exists(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s: %w (is --data the directory `uneventful serve --data` uses?)", path, err)
	}
	return nil
}
