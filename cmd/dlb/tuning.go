package main

import (
	"time"

	"github.com/dlb-lb/dlb/proxy"
	"github.com/urfave/cli/v2"
)

// tuningCategory is the help section of the flags for performance work:
// their defaults suit almost everyone.
const tuningCategory = "TUNING (for performance work; the defaults suit most setups):"

// tuningFlags are the flags of the data path's and the runtime's knobs,
// shown in their own section of dlb --help.
func tuningFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "upstream-transport", Category: tuningCategory, Value: proxy.TransportFast, EnvVars: envs("UPSTREAM_TRANSPORT"), Usage: "how requests reach replicas: fast (HTTP/1.1 on the request's goroutine) or std (Go's http.Transport)"},
		&cli.DurationFlag{Name: "park-idle-after", Category: tuningCategory, Value: time.Second, EnvVars: envs("PARK_IDLE_AFTER"), Usage: "a client connection idle this long between requests is parked: it keeps no goroutine nor buffer until its next request (Linux; 0 disables)"},
		&cli.IntFlag{Name: "gc-percent", Category: tuningCategory, Value: 100, EnvVars: envs("GC_PERCENT"), Usage: "garbage collector target, as GOGC: the heap may grow this many percent over the live data before a collection (-1 turns it off)"},
		&cli.StringFlag{Name: "memory-limit", Category: tuningCategory, Value: "0", EnvVars: envs("MEMORY_LIMIT"), Usage: "soft memory limit, as GOMEMLIMIT, e.g. 256MiB: the collector works harder near it (0: none)"},
		&cli.BoolFlag{Name: "pprof", Category: tuningCategory, EnvVars: envs("PPROF"), Usage: "serve Go's profiler at /debug/pprof/ on the admin address (for performance work)"},
	}
}
