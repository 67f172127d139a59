//go:build unix

package sqlite

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/uneventful/uneventful"
	"golang.org/x/sys/unix"
)

// lock takes an exclusive lock on path + ".lock" and writes this process's
// id into it, so that a second writer on the same database file refuses to
// start and names the first. The kernel releases the lock when the process
// ends, however it ends.
func lock(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &os.PathError{Op: "lock", Path: name, Err: err}
		}
		pid := "unknown"
		if b, err := os.ReadFile(name); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			pid = strings.TrimSpace(string(b))
		}
		return nil, uneventful.Errorf(uneventful.ErrUnavailable, "database_in_use",
			"%s is already opened for writing by another uneventful process (pid %s); "+
				"SQLite cannot be shared by writers — stop the other process or give this one its own --data directory", path, pid)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// unlock releases a lock taken by lock.
func unlock(f *os.File) error { return f.Close() }
