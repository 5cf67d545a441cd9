// Package gc sets the Go garbage collector's knobs, GOGC and GOMEMLIMIT,
// from dlb's --gc-percent and --memory-limit.
package gc

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/dlb-lb/dlb/internal/bytesize"
)

// DefaultPercent is GOGC's default, and --gc-percent's.
const DefaultPercent = 100

// Settings are the collector's knobs. A knob not Set does not override
// the Go runtime's environment variable, when that is set.
type Settings struct {
	Percent    int   // GOGC; -1 turns the collector off
	Limit      int64 // GOMEMLIMIT in bytes; 0: none
	SetPercent bool  // Percent was asked for (else GOGC wins)
	SetLimit   bool  // Limit was asked for (else GOMEMLIMIT wins)
}

// Check says what is wrong with Percent, if anything.
func (s Settings) Check() error {
	if s.Percent < -1 {
		return errors.New("must be -1 (off) or more")
	}
	return nil
}

// Apply sets the collector's knobs and returns a description for the log.
func (s Settings) Apply() string {
	if s.SetPercent || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(s.Percent)
	}
	if s.SetLimit || os.Getenv("GOMEMLIMIT") == "" {
		limit := s.Limit
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

// ParseLimit reads a memory limit: a size as bytesize.Parse reads it
// (B, KiB, MiB, GiB, or KB, MB, GB, also powers of 1024); "0" is none.
func ParseLimit(s string) (int64, error) {
	n, err := bytesize.Parse(s)
	if err != nil {
		return 0, errors.New("not a size: use a number of bytes with a unit, e.g. 256MiB or 1GiB (0: no limit)")
	}
	return n, nil
}
