package h2

import (
	"context"
	"slices"
	"time"
)

// A stream is its request's context (Request.Context): done when the
// stream ends before its handler returns (the client reset it, the
// connection ended) and when the handler returns; its values are the
// connection's (ServeConn's ctx). Until a handler asks for Done it costs
// no allocation, where context.WithCancelCause cost two objects per
// stream and its cancel a lock and a channel.

// Deadline is the connection context's.
func (st *stream) Deadline() (time.Time, bool) { return st.c.ctx.Deadline() }

// Value is the connection context's.
func (st *stream) Value(key any) any { return st.c.ctx.Value(key) }

// Err is context.Canceled once the stream is done.
func (st *stream) Err() error {
	if st.ctxDone.Load() {
		return context.Canceled
	}
	return nil
}

// Done returns a channel closed when the stream is done.
func (st *stream) Done() <-chan struct{} {
	st.ctxMu.Lock()
	defer st.ctxMu.Unlock()
	if st.doneCh == nil {
		st.doneCh = make(chan struct{})
		if st.ctxDone.Load() {
			close(st.doneCh)
		}
	}
	return st.doneCh
}

// AfterFunc runs f on a goroutine of its own once the stream is done, at
// once if it is; stop keeps it from running and reports whether it did.
// It is context.AfterFunc's, which the context package calls for a context
// derived from the stream's, instead of a goroutine that waits on Done.
func (st *stream) AfterFunc(f func()) (stop func() bool) {
	st.ctxMu.Lock()
	defer st.ctxMu.Unlock()
	if st.ctxDone.Load() {
		go f()
		return func() bool { return false }
	}
	a := &f
	st.afters = append(st.afters, a)
	return func() bool {
		st.ctxMu.Lock()
		defer st.ctxMu.Unlock()
		i := slices.Index(st.afters, a)
		if i < 0 {
			return false
		}
		st.afters = slices.Delete(st.afters, i, i+1)
		return true
	}
}

// cancel makes the stream's context done.
func (st *stream) cancel() {
	st.ctxMu.Lock()
	if st.ctxDone.Swap(true) {
		st.ctxMu.Unlock()
		return
	}
	if st.doneCh != nil {
		close(st.doneCh)
	}
	afters := st.afters
	st.afters = nil
	st.ctxMu.Unlock()
	for _, f := range afters {
		go (*f)()
	}
}

var _ context.Context = (*stream)(nil)
