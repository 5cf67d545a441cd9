package health

import (
	"context"
	"sync"
)

// tasks is the bookkeeping of background work per upstream ID (a readiness
// probe, a health check): starting one replaces the one running for that ID,
// and stopping one cancels its context. The zero value is ready to use.
type tasks struct {
	mu      sync.Mutex
	running map[string]context.CancelFunc
}

// start cancels the task running for id, if any, and returns the context of
// a new one.
func (ts *tasks) start(id string) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.running == nil {
		ts.running = map[string]context.CancelFunc{}
	}
	if stop, ok := ts.running[id]; ok {
		stop()
	}
	ts.running[id] = cancel
	return ctx
}

// stop cancels the task running for id, if any.
func (ts *tasks) stop(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if stop, ok := ts.running[id]; ok {
		stop()
		delete(ts.running, id)
	}
}

// finish ends the task of ctx for id and reports whether it was still the
// one running: a replaced or stopped task has had its context cancelled
// under the same lock, so only the current one may report its result.
func (ts *tasks) finish(id string, ctx context.Context) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	ts.running[id]()
	delete(ts.running, id)
	return true
}

// count is how many tasks are running.
func (ts *tasks) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.running)
}
