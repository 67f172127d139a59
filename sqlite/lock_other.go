//go:build !unix

package sqlite

import "os"

// lock takes no lock where flock(2) does not exist: there, nothing stops a
// second writer process on the same database file.
func lock(path string) (*os.File, error) { return nil, nil }

// unlock releases a lock taken by lock.
func unlock(f *os.File) error { return nil }
