package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestConnectionSettings checks the settings that durability and
// concurrency rest on: the writer commits in WAL mode with a full sync, and
// the read pool cannot write.
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
