package h2

import (
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// stream is one request and its response. Fields are under c.mu, but
// for the context's (context.go).
type stream struct {
	c  *conn
	id uint32

	// Its request's context (context.go).
	ctxMu   sync.Mutex
	ctxDone atomic.Bool
	cause   error                        // why it is done
	inner   atomic.Pointer[innerContext] // made by the first Done

	sendWindow int64 // what the client lets the response send
	recvWindow int64 // what the client may still send of the body
	unacked    int64 // body read by the handler, not yet given back

	body        []byte // received, not yet read
	remoteDone  bool   // END_STREAM came: the request is complete
	bodyClosed  bool   // the handler closed the body: data is dropped
	reset       bool   // RST_STREAM went either way: nothing more is sent
	clientReset bool   // the client's RST_STREAM came
	err         error  // why reads and writes fail, once they do
	declared    int64  // the request's Content-Length, -1 if none
	received    int64
	trailer     http.Header // trailer fields as they came

	needContinue bool // the client waits for 100 Continue before its body
	sentHeaders  bool // the response's HEADERS went out
	sentEnd      bool // and its END_STREAM: with remoteDone, the stream is closed

	rdeadline, wdeadline time.Time

	onAbort func() // set by the handler's ResponseWriter.AfterAbort
	aborted bool   // abort ran

	rw responseWriter // the handler's; its goroutine's alone, not under c.mu
}

// abort ends a stream's reads and writes with err and cancels its
// request's context. Called with c.mu held.
func (st *stream) abort(err error) {
	if st.err == nil {
		st.err = err
	}
	st.reset = true
	st.aborted = true
	st.cancel(err)
	if f := st.onAbort; f != nil {
		st.onAbort = nil
		f()
	}
	st.c.cond.Broadcast()
}

// wait blocks on the connection's condition until woken or deadline
// passes (zero: none); false when it has passed. Called with c.mu held.
func (c *conn) wait(deadline time.Time) bool {
	if deadline.IsZero() {
		c.cond.Wait()
		return true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	c.cond.Wait()
	t.Stop()
	return true
}

// requestBody is a stream's request body, as the handler reads it.
type requestBody struct{ st *stream }

func (b requestBody) Read(p []byte) (int, error) {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.needContinue {
		st.needContinue = false
		if !st.sentHeaders && !st.reset {
			c.henc.reset()
			c.henc.status(http.StatusContinue)
			c.out = appendHeaderBlock(c.out, st.id, c.henc.b, false, int(c.peerFrame))
		}
	}
	for len(st.body) == 0 {
		switch {
		case st.bodyClosed:
			return 0, errBodyClosed
		case st.remoteDone:
			return 0, io.EOF
		case st.err != nil:
			return 0, st.err
		}
		if len(c.out) > 0 && !c.flushing && c.werr == nil {
			// What is queued (a window update) goes out before the
			// wait; kick let go of mu, so everything is looked at again.
			c.kick()
			continue
		}
		if !c.wait(st.rdeadline) {
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, st.body)
	st.body = st.body[n:]
	if len(st.body) == 0 {
		st.body = st.body[:0:0] // a new buffer next time: the old one may be large
	}
	c.giveBack(st, int64(n))
	if c.unacked == 0 || st.unacked == 0 {
		c.kick() // a window update was queued
	}
	return n, nil
}

var errBodyClosed = errors.New("http2: request body closed")

func (b requestBody) Close() error {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.bodyClosed {
		st.bodyClosed = true
		if len(st.body) > 0 {
			c.giveBack(nil, int64(len(st.body)))
			st.body = nil
		}
		c.cond.Broadcast()
	}
	return nil
}

// newRequest builds the request of a new stream from its header block
// (RFC 9113 section 8.3.1); nil and the code to reset the stream with when
// the block is malformed. Called with c.mu held.
func (c *conn) newRequest(st *stream, f *http2.MetaHeadersFrame) (*http.Request, http2.ErrCode) {
	var method, path, scheme, authority string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":path":
			path = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		default: // :protocol (no extended CONNECT here), :status, unknown ones
			return nil, http2.ErrCodeProtocol
		}
	}
	connect := method == "CONNECT"
	if connect && (path != "" || scheme != "" || authority == "") ||
		!connect && (method == "" || path == "" || scheme == "") {
		return nil, http2.ErrCodeProtocol
	}
	fields := f.RegularFields()
	h := make(http.Header, len(fields))
	vals := make([]string, len(fields)) // the values' slices share it: one allocation
	var cookies []string
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return nil, http2.ErrCodeProtocol // RFC 9113 section 8.2.2
		case "te":
			if hf.Value != "trailers" {
				return nil, http2.ErrCodeProtocol
			}
		case "cookie":
			// RFC 9113 section 8.2.3: split cookies are joined for
			// HTTP/1.1 and its applications.
			cookies = append(cookies, hf.Value)
			continue
		}
		k := canonical(hf.Name)
		if vv, ok := h[k]; ok {
			h[k] = append(vv, hf.Value)
			continue
		}
		i := len(h)
		vals[i] = hf.Value
		h[k] = vals[i : i+1 : i+1]
	}
	if len(cookies) > 0 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if authority == "" {
		authority = h.Get("Host")
	}
	delete(h, "Host") // it is Request.Host, as net/http's servers have it
	if vv := h["Content-Length"]; len(vv) > 0 {
		n, err := strconv.ParseInt(vv[0], 10, 64)
		if len(vv) > 1 || err != nil || n < 0 {
			return nil, http2.ErrCodeProtocol
		}
		st.declared = n
	}
	var u *url.URL
	var err error
	if connect {
		u, path = &url.URL{Host: authority}, authority
	} else if !requestTarget(path) {
		return nil, http2.ErrCodeProtocol
	} else if u, err = url.ParseRequestURI(path); err != nil {
		return nil, http2.ErrCodeProtocol
	}
	r := &http.Request{Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: h,
		Host: authority, RemoteAddr: c.remote, RequestURI: path, TLS: c.tls}
	if f.StreamEnded() {
		if st.declared > 0 {
			return nil, http2.ErrCodeProtocol
		}
		st.remoteDone = true
		r.Body = http.NoBody
	} else {
		r.ContentLength = st.declared
		r.Body = requestBody{st}
		st.needContinue = strings.EqualFold(h.Get("Expect"), "100-continue")
		if vv := h["Trailer"]; len(vv) > 0 {
			r.Trailer = http.Header{}
			for _, v := range vv {
				for k := range strings.SplitSeq(v, ",") {
					if k = canonical(strings.TrimSpace(k)); k != "" && httpguts.ValidTrailerHeader(k) {
						r.Trailer[k] = nil
					}
				}
			}
			st.trailer = r.Trailer
		}
	}
	return r.WithContext(st), 0
}

// requestTarget reports whether a :path can be an HTTP/1.1 request-target
// (RFC 9110 section 7.1): no space, tab or other control. HPACK lets
// spaces through, and a proxy writes the path into a request line, where
// a space would end it early.
func requestTarget(path string) bool {
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// canonical is the canonical form of a header field's name (lowercase on
// the wire in HTTP/2).
func canonical(name string) string {
	if k, ok := commonCanonical[name]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// commonFields are the canonical names of common fields, requests' and
// responses'.
var commonFields = []string{
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Age",
	"Access-Control-Allow-Origin", "Allow", "Authorization", "Cache-Control", "Content-Disposition",
	"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
	"Content-Type", "Cookie", "Date", "Etag", "Expect", "Expires", "Forwarded", "From", "Host",
	"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
	"Last-Modified", "Link", "Location", "Max-Forwards", "Origin", "Priority", "Proxy-Authenticate",
	"Proxy-Authorization", "Range", "Referer", "Refresh", "Retry-After", "Server", "Set-Cookie",
	"Strict-Transport-Security", "Te", "Trailer", "User-Agent", "Vary", "Via", "Www-Authenticate",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "X-Real-Ip",
	"Grpc-Status", "Grpc-Message", "Grpc-Encoding", "Grpc-Accept-Encoding", "Grpc-Timeout",
	"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Ch-Ua",
	"Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Upgrade-Insecure-Requests",
}

// commonCanonical maps the lower-case name of each of commonFields, as
// HTTP/2 sends it, to its canonical one.
var commonCanonical = func() map[string]string {
	m := make(map[string]string, len(commonFields))
	for _, k := range commonFields {
		m[strings.ToLower(k)] = k
	}
	return m
}()
