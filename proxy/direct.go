package proxy

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/dlb-lb/dlb/internal/h1"
)

// The requests that reach Proxy.ServeHTTP with no body (HTTP/2 streams
// above all: browsers' GETs) are forwarded here, not through ReverseProxy:
// the request head is written to the replica's connection from the
// client's request as it is, the response head is parsed in place
// (internal/h1) and its fields go straight into the client's header, with
// no outbound http.Request, no http.Response, and no header maps copied and
// cleaned between them. The tries, the failover and the answers to
// failures are Proxy's (retry, errorHandler). What the replica gets, and
// what the client gets of a well-formed response, are what ReverseProxy
// would send; a response the fast engine refuses (obs-fold, a bare LF,
// Content-Length with Transfer-Encoding) is refused here too (502).

// direct reports whether forwardDirect carries r, whose attempt is a: a
// request without a body (a.client nil) to a plain HTTP/1.1 replica, from a
// client that is not a trusted proxy, on a route that pins no sessions,
// and none of a protocol switch, CONNECT, Expect, trailers, a target that
// is not a path, or HTTP/1.0 without Host. ReverseProxy carries the rest.
func (p *Proxy) direct(r *http.Request, a *attempt) bool {
	if a.client != nil || a.route.Sticky || a.route.Scheme == SchemeH2C || r.Method == http.MethodConnect ||
		r.Host == "" || r.Trailer != nil || r.URL.Opaque != "" {
		return false
	}
	if _, ok := r.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := r.Header["Expect"]; ok {
		return false
	}
	return !p.opts.TrustedProxies.Trusts(r.RemoteAddr)
}

// forwardDirect sends r to a.up, retrying as retryTransport does, and
// relays the response to w; a failure with no response is answered by
// errorHandler.
func (p *Proxy) forwardDirect(w http.ResponseWriter, r *http.Request, a *attempt) {
	ctx := r.Context()
	// Nothing of a bodyless GET or HEAD is lost by sending it again: an
	// idle connection is looked at first only for the others.
	peek := !a.mayResend(r, true)
	for {
		run := a.up.Admissions()
		ft := p.transportFor(a.up).fast
		hc, reused, err := ft.getConn(ctx, a.up.Address(), a.fresh, peek, time.Now())
		if err == nil {
			if err = p.tryDirect(w, r, a, hc); err == nil {
				return
			}
			if ctx.Err() == nil {
				err = stale(err, reused, hc.r.got)
			}
		}
		if ctx.Err() != nil {
			return // the client went away; nobody is left to answer
		}
		if a.fresh, err = p.retry(r, a, err, run); err != nil {
			p.errorHandler(w, r.WithContext(a), err)
			return
		}
	}
}

// tryDirect sends the request head on hc and, once the replica's response
// head is in, relays the response (then it returns nil: the response is
// the client's, whatever becomes of its body). An error means no response
// came; hc is closed then.
func (p *Proxy) tryDirect(w http.ResponseWriter, r *http.Request, a *attempt, hc *h1Conn) error {
	ctx := r.Context()
	// The replica's connection is closed when the client goes away before
	// the response is done, which tells the replica too.
	var stop func() bool
	if ab, ok := unobserved(w).(aborter); ok {
		ab.AfterAbort(hc.abort)
		stop = ab.ClearAbort
	} else {
		stop = context.AfterFunc(ctx, hc.abort)
	}
	fail := func(err error) error {
		stop()
		hc.close()
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	hc.r.got, hc.r.limit = 0, maxResponseHeader
	hc.sock.ClearWriteDeadline()
	hc.bw.Write(appendDirectRequest(hc.bw.AvailableBuffer(), r, a.route))
	if err := hc.bw.Flush(); err != nil {
		return fail(err)
	}
	d := p.responseHeaderTimeout(a.route)
	if a.route.ResponseHeaderTimeout <= 0 && longLived(r) {
		d = 0
	}
	sent := time.Now() // the timeout runs from the request's end, as the std transport's
	rs := directResponses.Get().(*directResponse)
	defer directResponses.Put(rs)
	for {
		b, err := readHeadWithin(hc, &rs.Response, d, sent)
		if err != nil {
			return fail(err)
		}
		if rs.Status == http.StatusSwitchingProtocols {
			return fail(errBadResponse) // no upgrade was asked for
		}
		if rs.Status >= 200 {
			p.relayDirect(w, r, a, hc, stop, rs, b)
			return nil
		}
		// 1xx answers (103 Early Hints) go to the client as they come, as
		// ReverseProxy passes them; the final one follows.
		h := w.Header()
		keys := rs.copyFields(h, b, true)
		w.WriteHeader(rs.Status)
		for _, k := range keys {
			delete(h, k)
		}
		hc.br.Discard(rs.HeadLen)
	}
}

// aborter is internal/h2's ResponseWriter: it runs a function when its
// stream ends early, as context.AfterFunc does for the request's context,
// at less cost.
type aborter interface {
	AfterAbort(f func())
	ClearAbort() bool
}

// directResponse is a response head parsed from its connection's buffer.
type directResponse struct {
	h1.Response
}

// directResponses keeps parsed heads for the next requests: one holds
// h1.MaxFields fields, 3 KiB to allocate and clear for each otherwise.
var directResponses = sync.Pool{New: func() any { return new(directResponse) }}

// copyFields adds the response's fields, but for the hop-by-hop ones and
// Trailer, to h, and returns their names when names is set. b is the
// head's bytes: one string is made of them, and the names and values are
// its substrings.
func (rs *directResponse) copyFields(h http.Header, b []byte, names bool) []string {
	fields := rs.Fields()
	s := string(b[:rs.HeadLen])
	vals := make([]string, len(fields))
	var keys []string
	if names {
		keys = make([]string, 0, len(fields))
	}
	for i, f := range fields {
		if rs.Hop(f.Name) || len(f.Name) == 7 && strings.EqualFold(str(f.Name), "Trailer") {
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(sub(s, b, f.Name))
		vals[i] = sub(s, b, f.Value)
		if vv, ok := h[k]; ok {
			h[k] = append(vv, vals[i])
			continue
		}
		h[k] = vals[i : i+1 : i+1]
		if names {
			keys = append(keys, k)
		}
	}
	return keys
}

// sub returns the part of s, a copy of b, that part (a slice of b) is.
func sub(s string, b, part []byte) string {
	if len(part) == 0 {
		return ""
	}
	i := int(uintptr(unsafe.Pointer(unsafe.SliceData(part))) - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	return s[i : i+len(part)]
}

// relayDirect writes the final response whose head (b, parsed in rs) has
// been read to w, then its body; hc goes back to its pool when the
// exchange leaves it usable. A body that breaks off, or a client that stops
// taking it, aborts the response (http.ErrAbortHandler), as ReverseProxy
// does: the client must not take a cut body for a whole one.
func (p *Proxy) relayDirect(w http.ResponseWriter, r *http.Request, a *attempt, hc *h1Conn, stop func() bool, rs *directResponse, b []byte) {
	a.status = rs.Status
	rs.copyFields(w.Header(), b, false)
	hc.br.Discard(rs.HeadLen)
	hc.r.limit = math.MaxInt64
	bodyless := rs.Bodyless(r.Method == http.MethodHead)
	if !bodyless && (rs.Chunked || rs.ContentLength < 0 || int64(hc.br.Buffered()) < rs.ContentLength) {
		hc.noReadDeadline() // the body takes as long as it takes
	}
	p.renewWrite(a)
	w.WriteHeader(rs.Status)
	keep := !rs.Close && !rs.HTTP10
	var err error
	switch {
	case bodyless:
	case rs.Chunked:
		cr := httputil.NewChunkedReader(hc.br)
		if err = p.copyDirect(w, a, cr, true); err == nil {
			err = trailersDirect(w.Header(), hc)
		}
	case rs.ContentLength >= 0 && int64(hc.br.Buffered()) >= rs.ContentLength:
		// All of it came with the head: written from the connection's
		// buffer, with no copy.
		b, _ := hc.br.Peek(int(rs.ContentLength))
		if _, werr := w.Write(b); werr != nil {
			err = writeError{werr}
		}
		hc.br.Discard(len(b))
	case rs.ContentLength >= 0:
		err = p.copyDirect(w, a, io.LimitReader(hc.br, rs.ContentLength), rs.streaming(w.Header()))
	default:
		keep = false // the body ends with the connection
		err = p.copyDirect(w, a, hc.br, true)
	}
	if err != nil {
		stop()
		hc.close()
		var we writeError
		if !errors.As(err, &we) && r.Context().Err() == nil {
			// The replica's fault, logged as ReverseProxy logs it; a client
			// that went away is not.
			p.opts.Log.Warn().Err(err).Str("service", a.route.Service).Str("replica", a.up.Name()).
				Msg("response body copy failed: the replica's body broke off")
		}
		panic(http.ErrAbortHandler)
	}
	hc.done(stop, keep)
}

// streaming reports whether a body of known length is flushed as it comes:
// server-sent events, as ReverseProxy's flushInterval has it.
func (rs *directResponse) streaming(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && len(ct[0]) >= 17 && strings.EqualFold(ct[0][:17], "text/event-stream")
}

// copyDirect copies body to w, flushing w after each part when flush is
// set, and renewing the client's write deadline now and then
// (renewWrite). A read error other than io.EOF, or a body shorter than its
// Content-Length, is returned, and so is a failed write, as a writeError.
func (p *Proxy) copyDirect(w http.ResponseWriter, a *attempt, body io.Reader, flush bool) error {
	buf := bufferPool{}.Get()
	defer bufferPool{}.Put(buf)
	lr, _ := body.(*io.LimitedReader)
	var fl *http.ResponseController
	if flush {
		fl = http.NewResponseController(w)
	}
	for {
		n, err := body.Read(buf)
		if n > 0 {
			p.renewWrite(a)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return writeError{werr}
			}
			if fl != nil {
				if ferr := fl.Flush(); ferr != nil {
					return writeError{ferr}
				}
			}
		}
		switch {
		case err == io.EOF && lr != nil && lr.N > 0:
			return io.ErrUnexpectedEOF
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
		if lr != nil && lr.N == 0 {
			return nil
		}
	}
}

// writeError is a failed write to the client.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// trailersDirect reads the trailer section after a chunked body's last
// chunk and gives its fields to w as trailers (http.TrailerPrefix).
func trailersDirect(h http.Header, hc *h1Conn) error {
	hc.r.limit = maxResponseHeader
	t, err := textproto.NewReader(hc.br).ReadMIMEHeader()
	hc.r.limit = math.MaxInt64
	if err != nil {
		return err
	}
	for k, vv := range t {
		if h1.HopByHop([]byte(k)) {
			continue
		}
		h[http.TrailerPrefix+k] = vv
	}
	return nil
}

// appendDirectRequest appends the head of the request sent to the replica: r's
// method, target (without the route's path when it strips it) and Host,
// its fields but for the hop-by-hop ones (those its Connection field names
// too) and the forwarding ones a client may not set, Te: trailers when the
// client asked for trailers, and X-Forwarded-For, -Host and -Proto, as
// ReverseProxy with rewrite and setForwarded writes it.
func appendDirectRequest(b []byte, r *http.Request, route *Route) []byte {
	u := r.URL
	if route.StripPath && route.Path != "/" && hasPathPrefix(u.Path, route.Path) {
		c := *u
		stripPrefix(&c, route.Path)
		u = &c
	}
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, u.EscapedPath()...)
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\n"...)
	b = h1.AppendField(b, "Host", r.Host)
	conn := r.Header["Connection"]
	trailers := false
	for k, vv := range r.Header {
		name := unsafe.Slice(unsafe.StringData(k), len(k))
		switch {
		case h1.HopByHop(name):
			if k == "Te" {
				trailers = listsToken(vv, "trailers")
			}
			continue
		case forwardingField(name), k == "Content-Length", conn != nil && listsToken(conn, k):
			continue
		case k == "User-Agent":
			vv = vv[:min(len(vv), 1)] // as Request.Write sends it
		}
		for _, v := range vv {
			b = h1.AppendField(b, k, v)
		}
	}
	if trailers {
		b = h1.AppendField(b, "Te", "trailers")
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		b = h1.AppendField(b, "Content-Length", "0") // as Request.Write says an empty body
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		b = h1.AppendField(b, "X-Forwarded-For", ip)
	}
	b = h1.AppendField(b, "X-Forwarded-Host", r.Host)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	b = h1.AppendField(b, "X-Forwarded-Proto", proto)
	return append(b, "\r\n"...)
}

// listsToken reports whether a comma-separated list in vv has tok (in any
// case).
func listsToken(vv []string, tok string) bool {
	for _, v := range vv {
		for item := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(item), tok) {
				return true
			}
		}
	}
	return false
}
