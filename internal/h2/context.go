package h2

import (
	"context"
	"time"
)

// A stream is its request's context (Request.Context): done when the
// stream ends before its handler returns (the client reset it, the
// connection ended) and when the handler returns; its values are the
// connection's (ServeConn's ctx). A request that nobody waits on (the
// proxy's direct path asks Err only) costs no allocation, where
// context.WithCancelCause cost two objects per stream. The first Done
// makes a context.WithCancelCause of the connection's context and hands
// over to it: Value then answers from it, so that the context package
// takes it for the parent of the contexts derived from the stream's, and
// registers them with it rather than start a goroutine each to wait on
// Done; context.Cause gives the stream's error.

// Deadline is the connection context's: none (newConn).
func (st *stream) Deadline() (time.Time, bool) { return st.c.ctx.Deadline() }

// Value is the connection context's, or the inner one's once Done made it.
func (st *stream) Value(key any) any {
	if in := st.inner.Load(); in != nil {
		return in.ctx.Value(key)
	}
	return st.c.ctx.Value(key)
}

// Err is context.Canceled once the stream is done.
func (st *stream) Err() error {
	if st.ctxDone.Load() {
		return context.Canceled
	}
	return nil
}

// Done returns a channel closed when the stream is done.
func (st *stream) Done() <-chan struct{} {
	if in := st.inner.Load(); in != nil {
		return in.ctx.Done()
	}
	st.ctxMu.Lock()
	defer st.ctxMu.Unlock()
	if in := st.inner.Load(); in != nil {
		return in.ctx.Done()
	}
	in := &innerContext{}
	in.ctx, in.cancel = context.WithCancelCause(st.c.ctx)
	if st.ctxDone.Load() {
		in.cancel(st.cause)
	}
	st.inner.Store(in)
	return in.ctx.Done()
}

// innerContext is what Done makes.
type innerContext struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// cancel makes the stream's context done, with cause for context.Cause.
func (st *stream) cancel(cause error) {
	st.ctxMu.Lock()
	defer st.ctxMu.Unlock()
	if st.ctxDone.Swap(true) {
		return
	}
	st.cause = cause
	if in := st.inner.Load(); in != nil {
		in.cancel(cause)
	}
}

var _ context.Context = (*stream)(nil)
