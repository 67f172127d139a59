package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// TestConnectionSettings checks the settings that durability and
// concurrency rest on: the writer commits in WAL mode with a full sync and
// cuts the WAL file back after a long reader let it grow, and the read pool
// cannot write.
func TestConnectionSettings(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "wallet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		pool   *sql.DB
		pragma string
		want   string
	}{
		{s.db.write, "journal_mode", "wal"},
		{s.db.write, "synchronous", "2"}, // FULL
		{s.db.write, "journal_size_limit", fmt.Sprint(WALSizeLimit)},
		{s.db.read, "synchronous", "2"},
		{s.db.read, "query_only", "1"},
	} {
		var got string
		if err := c.pool.QueryRowContext(t.Context(), "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := s.db.read.ExecContext(t.Context(), "DELETE FROM checkpoint"); err == nil {
		t.Error("a read connection wrote")
	}
}

// TestWithSync checks that the sync option reaches the write connection of
// both kinds of file, that the default stays FULL, and that a mode other
// than FULL or OFF is refused.
func TestWithSync(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), filepath.Join(dir, "wallet.db"), WithSync(SyncOff))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err := OpenHistory(t.Context(), filepath.Join(dir, "history.db"), WithSync(SyncOff))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	full, err := OpenHistory(t.Context(), filepath.Join(dir, "other.db"), WithSync(SyncFull))
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	for _, c := range []struct {
		name string
		pool *sql.DB
		want string
	}{
		{"store, SyncOff", s.db.write, "0"},
		{"history, SyncOff", h.db.write, "0"},
		{"history, SyncFull", full.db.write, "2"},
	} {
		var got string
		if err := c.pool.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: PRAGMA synchronous = %s, want %s", c.name, got, c.want)
		}
	}
	if _, err := Open(t.Context(), filepath.Join(dir, "bad.db"), WithSync("NORMAL; DROP")); err == nil {
		t.Error("Open with an unknown sync mode succeeded")
	}
}
