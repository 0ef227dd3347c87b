//go:build linux || darwin

package store

import "syscall"

// freeBytes returns the bytes an unprivileged writer can still use on the file
// system holding dir.
func freeBytes(dir string) (uint64, bool) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, false
	}
	return fs.Bavail * uint64(fs.Bsize), true
}
