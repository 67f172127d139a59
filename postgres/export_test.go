package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenConfigured opens a Store after configure adjusts its pool's
// configuration, so that tests can watch its connections.
func OpenConfigured(ctx context.Context, url string, configure func(*pgxpool.Config)) (*Store, error) {
	return openStore(ctx, url, configure)
}

// OpenHistoryConfigured is OpenConfigured for a History.
func OpenHistoryConfigured(ctx context.Context, url string, configure func(*pgxpool.Config)) (*History, error) {
	return openHistory(ctx, url, configure)
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.db.pool }
