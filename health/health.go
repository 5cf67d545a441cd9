package health

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/dlb-lb/dlb/balancer"
)

// Check is an active HTTP check of one upstream (label dlb.health.path).
type Check struct {
	// Path is requested with GET; a 2xx or 3xx answer passes.
	Path string
	// Interval between checks once the upstream is ready, and Timeout of one.
	Interval, Timeout time.Duration
	// Host, when set, is sent as the Host header.
	Host string
	// Admit makes the first passing check mark the upstream ready (when no
	// Docker HEALTHCHECK decides that).
	Admit bool
}

// Checker runs active HTTP checks. The first check of an upstream runs as
// soon as it is watched, and again quickly (backing off to Interval) until it
// first passes, which makes the upstream ready; after that, Fall consecutive
// failures take it Down and Rise consecutive passes bring it back. The zero
// value is ready to use (Fall and Rise default to DefaultFall and DefaultRise).
type Checker struct {
	Fall, Rise int
	// Client sends the checks; nil means a client with no keep-alive.
	Client *http.Client
	// OnChange, if set, is called after a check changes an upstream's state.
	OnChange func()

	checks tasks
}

// Watch starts checking u (a member of pool) with hc, replacing any check
// already running for it.
func (c *Checker) Watch(pool *balancer.Pool, u *balancer.Upstream, hc Check) {
	go c.run(c.checks.start(u.ID()), pool, u, hc)
}

// Unwatch stops checking the upstream with the given ID.
func (c *Checker) Unwatch(id string) { c.checks.stop(id) }

func (c *Checker) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultCheckClient
}

var defaultCheckClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	// Redirects are answers too: a 3xx passes, it is not followed.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// The defaults of an active check: the one place they are set (the
// dlb.health.* labels default to them too).
const (
	DefaultInterval = 5 * time.Second // between checks (dlb.health.interval)
	DefaultTimeout  = 2 * time.Second // for one check's answer (dlb.health.timeout)
	DefaultFall     = 2               // failures in a row that take a ready upstream down
	DefaultRise     = 2               // passes in a row that bring it back
)

func (c *Checker) run(ctx context.Context, pool *balancer.Pool, u *balancer.Upstream, hc Check) {
	fall, rise := max(c.Fall, 1), max(c.Rise, 1)
	if c.Fall == 0 {
		fall = DefaultFall
	}
	if c.Rise == 0 {
		rise = DefaultRise
	}
	if hc.Interval <= 0 {
		hc.Interval = DefaultInterval
	}
	if hc.Timeout <= 0 {
		hc.Timeout = DefaultTimeout
	}
	admitted := false
	wait := 25 * time.Millisecond
	passes, failures := 0, 0
	for {
		ok := c.check(ctx, u, hc)
		if ctx.Err() != nil {
			return
		}
		changed := false
		switch {
		case !admitted && ok:
			admitted = true
			if hc.Admit {
				changed = pool.MarkReady(u.ID())
			}
		case !admitted:
			wait = min(wait*2, hc.Interval)
		case ok:
			passes, failures = passes+1, 0
			if passes >= rise && !pool.Healthy(u.ID(), balancer.CheckActive) {
				changed = pool.SetHealth(u.ID(), balancer.CheckActive, true)
			}
		default:
			passes, failures = 0, failures+1
			if failures >= fall && pool.Healthy(u.ID(), balancer.CheckActive) {
				changed = pool.SetHealth(u.ID(), balancer.CheckActive, false)
			}
		}
		if changed && c.OnChange != nil {
			c.OnChange()
		}
		next := hc.Interval
		if !admitted {
			next = wait
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// check sends one check and reports whether it passed.
func (c *Checker) check(ctx context.Context, u *balancer.Upstream, hc Check) bool {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+u.Address()+hc.Path, nil)
	if err != nil {
		return false
	}
	if hc.Host != "" {
		req.Host = hc.Host
	}
	req.Header.Set("User-Agent", "dlb-health-check")
	resp, err := c.client().Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
