// Package accesslog is dlb's access log: one line per request, as JSON or
// in the console format of dlb's own log, written by a proxy.Observer.
package accesslog

import (
	"io"
	"net"
	"net/http"
	"os"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/proxy"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Log writes one line per request: when it began, the client, method,
// host, path, status, response bytes, duration (ms), service and replica.
// It is a proxy.Observer.
type Log struct {
	log zerolog.Logger
}

var _ proxy.Observer = (*Log)(nil)

// fields is the order of the fields in the console format.
var fields = []string{"client", "method", "host", "path", "status", "bytes", "duration_ms", "service", "replica"}

// New writes the access log to w as JSON lines, or as the console
// format (format "console"), like dlb's own log; in colour only on a
// terminal.
func New(w io.Writer, format string) *Log {
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "2006-01-02T15:04:05.000Z07:00",
			NoColor:    !IsTerminal(w),
			PartsOrder: []string{zerolog.TimestampFieldName}, FieldsOrder: fields}
	}
	return &Log{log: zerolog.New(w)}
}

// IsTerminal reports whether w is a terminal: dlb's logs, its own and the
// access log, are coloured only there (docker compose logs, files and pipes
// get no escape codes).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// Ejected writes nothing: the request that saw the failure gets its line.
func (l *Log) Ejected(*proxy.Route, *balancer.Upstream) {}

// Observe writes the request's line.
func (l *Log) Observe(r *http.Request, e *proxy.Exchange) {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	service, replica := "", ""
	if e.Route != nil {
		service = e.Route.Service
	}
	if e.Upstream != nil {
		replica = e.Upstream.Name()
	}
	l.log.Log().
		Str(zerolog.TimestampFieldName, e.Start.Format("2006-01-02T15:04:05.000Z07:00")).
		Str("client", client).Str("method", r.Method).Str("host", r.Host).Str("path", r.URL.Path).
		Int("status", e.Status).Int64("bytes", e.Bytes).
		Float64("duration_ms", float64(e.Duration.Microseconds())/1000).
		Str("service", service).Str("replica", replica).
		Send()
}
