// Package memory holds the in-process read model used when everything runs
// in one process.
package memory

import (
	"context"
	"sync"

	"github.com/uneventful/uneventful"
)

// ReadModel keeps entities' latest states in memory and reads everything
// else (and states it does not hold) from the domains' stores, which are
// the source of truth. Project is monotonic by version.
type ReadModel struct {
	// Stores maps a domain name to its store.
	Stores map[string]uneventful.Store
	// MaxEntities bounds the states held; past it an arbitrary one is
	// dropped and read again from its store when asked. New sets
	// DefaultMaxEntities.
	MaxEntities int

	mu     sync.RWMutex
	states map[string]uneventful.State
}

var _ uneventful.ReadModel = (*ReadModel)(nil)

// DefaultMaxEntities is the states a ReadModel holds by default: the same
// as the writer's cache, so that `serve` stays within a few hundred MiB
// however many entities it has touched (a held wallet costs ~800 bytes);
// a state not held is one indexed read from the store away.
const DefaultMaxEntities = 100000

// New returns a read model over the stores.
func New(stores map[string]uneventful.Store) *ReadModel {
	return &ReadModel{Stores: stores, MaxEntities: DefaultMaxEntities, states: make(map[string]uneventful.State)}
}

// Len returns the number of states held.
func (m *ReadModel) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.states)
}

// Project implements uneventful.ReadModel.
func (m *ReadModel) Project(_ context.Context, records []uneventful.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range records {
		if records[i].State != nil {
			m.put(*records[i].State)
		}
	}
	return nil
}

// put stores s unless a newer version is held. Callers hold mu.
func (m *ReadModel) put(s uneventful.State) {
	key := s.Stream()
	if old, ok := m.states[key]; ok {
		if old.Version >= s.Version {
			return
		}
	} else if len(m.states) >= m.MaxEntities {
		for k := range m.states {
			delete(m.states, k)
			break
		}
	}
	m.states[key] = s
}

// State implements uneventful.Reader.
func (m *ReadModel) State(ctx context.Context, domain, entityID string) (uneventful.State, error) {
	key := uneventful.StreamName(domain, entityID)
	m.mu.RLock()
	s, ok := m.states[key]
	m.mu.RUnlock()
	if ok {
		return s, nil
	}
	store, err := m.store(domain)
	if err != nil {
		return s, err
	}
	s, err = store.Load(ctx, domain, entityID)
	if err != nil {
		return s, err
	}
	m.mu.Lock()
	m.put(s)
	s = m.states[key] // a newer version may have been projected meanwhile
	m.mu.Unlock()
	return s, nil
}

// Events implements uneventful.Reader from the domain's event log.
func (m *ReadModel) Events(ctx context.Context, domain, entityID string, after int64, limit int) ([]uneventful.Event, error) {
	store, err := m.store(domain)
	if err != nil {
		return nil, err
	}
	return store.Events(ctx, uneventful.EventQuery{Domain: domain, EntityID: entityID, AfterVersion: after, AcceptedOnly: true, Limit: limit})
}

func (m *ReadModel) store(domain string) (uneventful.Store, error) {
	s, ok := m.Stores[domain]
	if !ok {
		return nil, uneventful.Errorf(uneventful.ErrNotFound, "unknown_domain", "there is no domain %q", domain)
	}
	return s, nil
}
