package proxy

import (
	"errors"
	"net"
	"net/http"
	"syscall"
)

// The one try/failover driver of every request, whichever engine carries
// it (Proxy.ServeHTTP's retryTransport, the fast engine's exchange): after
// a try that failed before any response came back, retry decides between
// sending the request again to the same replica on a new connection, moving
// it to another replica (failover), and answering the error. mayResend is
// the one rule of which requests may be sent again.

// staleConnError is the error of a try that went out on a kept-alive
// connection which the replica had closed while it sat idle (an idle
// timeout shorter than dlb's, as Node.js's 5 s): nothing of an answer came
// back. unsent says the request was never written (the transport saw the
// close first), so the replica cannot have seen it.
type staleConnError struct {
	err    error
	unsent bool
}

func (e *staleConnError) Error() string {
	if e.unsent {
		return "the upstream closed a kept-alive connection before the request was sent: " + e.err.Error()
	}
	return "the upstream closed a kept-alive connection before answering: " + e.err.Error()
}

func (e *staleConnError) Unwrap() error { return e.err }

// stale returns err as a staleConnError when a try on a reused connection
// that read got bytes of an answer failed with it the way a connection the
// replica closed while idle fails (closedWhileIdle); else err.
func stale(err error, reused bool, got int64) error {
	if reused && got == 0 && closedWhileIdle(err) {
		return &staleConnError{err: err}
	}
	return err
}

// closedWhileIdle reports whether err, of a request on a kept-alive
// connection that got no answer, may be the upstream's closing of the
// connection while it sat idle, so that the request may go again to it on a
// new connection. Not a response head that timed out (the upstream has the
// request, and is slow), nor nothing acknowledged (ETIMEDOUT, see
// unacknowledgedLimit: the upstream is gone, and a new connection would
// only wait for the dial timeout): those fail over to another replica.
func closedWhileIdle(err error) bool {
	return !errors.Is(err, errResponseHeaderTimeout) && !errors.Is(err, syscall.ETIMEDOUT)
}

// reachedReplica reports whether a try that failed with err may have reached the
// replica: not when connecting failed, nor when the transport never wrote
// the request.
func reachedReplica(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var sc *staleConnError
	return !errors.As(err, &sc) || !sc.unsent
}

// mayResend is the rule of which requests may be sent again after a try
// with no response: one that never reached a replica, when its body can be
// sent again; one that may have, only when it is also resendable (an
// idempotent method, or an idempotency key). body is nil when the request
// has none, or has it in memory (the fast engine's).
func mayResend(method string, keyed func() bool, body *replayBody, reached bool) bool {
	if body != nil && !body.replayable(!reached) {
		return false
	}
	return !reached || resendable(method, keyed)
}

// retry decides what follows a try of a's request req that failed with err
// before any response came back; run is the replica's Admissions before the
// try. A try that met a stale kept-alive connection goes again to the same
// replica on a new connection (fresh is true), once per replica, when the
// request may be sent again. Anything else fails over: a.up is then the
// next replica, or the error to answer with is returned.
func (p *Proxy) retry(req *http.Request, a *attempt, err error, run uint64) (fresh bool, _ error) {
	var sc *staleConnError
	if errors.As(err, &sc) && !a.resent && req.Context().Err() == nil && a.mayResend(req, !sc.unsent) {
		a.resent = true
		return true, nil
	}
	a.resent = false
	return false, p.failover(req, a, err, run)
}

// mayResend is mayResend for the attempt's request req.
func (a *attempt) mayResend(req *http.Request, reached bool) bool {
	keyed := a.keyed
	if keyed == nil {
		keyed = func() bool {
			return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
		}
	}
	return mayResend(req.Method, keyed, a.body, reached)
}

// retryable reports whether a request that failed with err, with no
// response, may be sent to another replica: never after Retries retries,
// when the client left, or when it broke two replicas already (a request
// that resets or confuses every replica it meets is not sent to a third;
// replicas that acknowledged nothing, on a lost machine, do not count);
// otherwise when it may be sent again (mayResend).
func (p *Proxy) retryable(req *http.Request, a *attempt, err error) bool {
	if len(a.tried) >= p.opts.Retries || req.Context().Err() != nil || a.broke >= 2 {
		return false
	}
	return a.mayResend(req, reachedReplica(err))
}
