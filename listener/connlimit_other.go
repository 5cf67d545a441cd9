//go:build !unix

package listener

// DefaultMaxConns is 0 (no limit) where the limit of open files is unknown.
func DefaultMaxConns() int64 { return 0 }
