//go:build unix

package listener

import "syscall"

// DefaultMaxConns is a connection limit that leaves room, under a process's
// limit of open files (nofile), for one replica connection per client
// connection and for Docker, the admin port and health checks: half of
// nofile less 256, at least 64. It is 0 (no limit) when nofile is unknown.
func DefaultMaxConns() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<40 {
		return 0
	}
	return max(int64(rl.Cur)/2-256, 64)
}
