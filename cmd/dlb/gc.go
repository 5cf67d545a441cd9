package main

import (
	"fmt"
	"github.com/dlb-lb/dlb/discovery"
	"os"
	"runtime/debug"
)

// gcSettings are the garbage collector's knobs: GOGC and GOMEMLIMIT, as
// flags. A flag left at its default does not override the environment
// variable of the Go runtime, when that is set.
type gcSettings struct {
	percent  int   // GOGC; negative turns the collector off
	limit    int64 // GOMEMLIMIT in bytes; 0: none
	setPct   bool
	setLimit bool
}

// apply sets the collector's knobs and returns a description for the log.
func (g gcSettings) apply() string {
	if g.setPct || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(g.percent)
	}
	if g.setLimit || os.Getenv("GOMEMLIMIT") == "" {
		limit := g.limit
		if limit <= 0 {
			limit = 1<<63 - 1 // no limit, the runtime's default
		}
		debug.SetMemoryLimit(limit)
	}
	pct := debug.SetGCPercent(-1)
	debug.SetGCPercent(pct)
	lim := debug.SetMemoryLimit(-1)
	limS := "none"
	if lim < 1<<62 {
		limS = fmt.Sprintf("%d MiB", lim>>20)
	}
	return fmt.Sprintf("gc percent %d, memory limit %s", pct, limS)
}

// parseSize reads --memory-limit: a size as discovery.ParseSize reads it
// (B, KiB, MiB, GiB, or KB, MB, GB, also powers of 1024); "0" is none.
func parseSize(s string) (int64, error) {
	n, err := discovery.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("not a size: use a number of bytes with a unit, e.g. 256MiB or 1GiB (0: no limit)")
	}
	return n, nil
}
