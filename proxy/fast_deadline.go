package proxy

import "time"

// Deadlines on the fast data path are moved lazily. Each SetReadDeadline or
// SetWriteDeadline resets a timer in Go's runtime, and the fast path would
// otherwise set three per request (the client's idle wait, the replica's
// response head, and clearing it again), a cost that shows per request
// (docs/performance.md, "Cheaper wins in the current loop"). A deadline
// already set is kept when it falls short of the wanted one by at most
// 1/deadlineSlack of the timeout, so a busy connection moves it a few times
// a second instead of on every request; a timeout then runs out between
// 7/8 of its length and its whole length after the wait began.
const deadlineSlack = 8

// moveDeadline reports whether a deadline set at cur (zero: none) must be
// moved to want, for a timeout of d: none is set, it is later than want,
// or too early.
func moveDeadline(cur, want time.Time, d time.Duration) bool {
	return cur.IsZero() || cur.After(want) || want.Sub(cur) > d/deadlineSlack
}

// setReadDeadline sets the client connection's read deadline (zero:
// none), remembering it.
func (fc *fastConn) setReadDeadline(t time.Time) { fc.sock.SetReadDeadline(t) }

// readWithin makes the client's read deadline about now+d (see
// deadlineSlack).
func (fc *fastConn) readWithin(now time.Time, d time.Duration) {
	if want := now.Add(d); moveDeadline(fc.sock.ReadDeadline(), want, d) {
		fc.setReadDeadline(want)
	}
}

// headWithin makes the replica connection's read deadline about now+d for
// its response head; the deadline stays on the connection afterwards until
// a read that may take longer (a body not yet buffered, a final response
// after a 1xx one, the std path's roundTrip) clears it. An event loop's
// connection has none: the loop keeps the time itself.
func (hc *h1Conn) headWithin(now time.Time, d time.Duration) {
	if want := now.Add(d); moveDeadline(hc.sock.ReadDeadline(), want, d) {
		hc.sock.SetReadDeadline(want)
	}
}

// noReadDeadline clears the replica connection's read deadline, if set.
func (hc *h1Conn) noReadDeadline() {
	if !hc.sock.ReadDeadline().IsZero() {
		hc.sock.SetReadDeadline(time.Time{})
	}
}
