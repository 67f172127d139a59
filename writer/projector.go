package writer

import (
	"context"
	"log/slog"
	"time"

	"github.com/uneventful/uneventful"
)

// PositionedReadModel is a read model that keeps, with its data, the store
// position it has been projected up to, and that answers "unavailable"
// until a position is marked: losing its data (a flush, a restart without
// persistence) loses the position too, which makes a Projector rebuild it.
type PositionedReadModel interface {
	uneventful.ReadModel
	// Position returns the position marked for domain, and false if none
	// is (the read model is new, or was flushed).
	Position(ctx context.Context, domain string) (int64, bool, error)
	// MarkReady marks that domain's data is projected up to position.
	MarkReady(ctx context.Context, domain string, position int64) error
}

// Projector is the catch-up projector: it keeps a read model converged to a
// store's state log, repairing it after the read model was flushed,
// restarted empty, or missed an update while unreachable. The writer
// projects each commit itself; the projector is the safety net, so it polls.
type Projector struct {
	Domain    string
	Store     uneventful.Store
	ReadModel PositionedReadModel
	// Interval between checks; default 1s.
	Interval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told the read model's position as each pass
	// begins and progresses (Projecting, Projected), e.g. to export the
	// read model's lag.
	Observer Observer
}

// Run projects until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	if p.Interval <= 0 {
		p.Interval = time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	for {
		if err := p.CatchUp(ctx); err != nil && ctx.Err() == nil {
			p.Logger.Warn("catch up read model; will retry", "domain", p.Domain, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.Interval):
		}
	}
}

// CatchUp projects every accepted record after the read model's position
// and marks the new position.
func (p *Projector) CatchUp(ctx context.Context) (err error) {
	var pos int64
	if p.Observer != nil {
		defer func() {
			if err != nil {
				p.Observer.Projected(pos, false, err)
			}
		}()
	}
	pos, ok, err := p.ReadModel.Position(ctx, p.Domain)
	if err != nil {
		return err
	}
	if p.Observer != nil {
		p.Observer.Projecting(pos, !ok)
	}
	if !ok {
		p.Logger.Info("read model has no position: rebuilding from the store", "domain", p.Domain)
		pos = 0
	}
	start, started := pos, time.Now()
	for {
		records, err := p.Store.Records(ctx, pos, 1000)
		if err != nil {
			return err
		}
		if len(records) > 0 {
			if err := p.ReadModel.Project(ctx, records); err != nil {
				return err
			}
			pos = records[len(records)-1].Event.Sequence
			if p.Observer != nil && len(records) == 1000 {
				p.Observer.Projected(pos, false, nil)
			}
		}
		// A marked position means reads are served, so it is marked
		// only once caught up, never part way through a rebuild.
		if len(records) < 1000 {
			break
		}
	}
	if !ok || pos != start {
		if err := p.ReadModel.MarkReady(ctx, p.Domain, pos); err != nil {
			return err
		}
		if !ok || pos-start > 1000 {
			p.Logger.Info("read model caught up", "domain", p.Domain, "from", start, "to", pos, "took", time.Since(started))
		}
	}
	if p.Observer != nil {
		p.Observer.Projected(pos, true, nil)
	}
	return nil
}
