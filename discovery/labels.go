package discovery

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/health"
	"github.com/dlb-lb/dlb/internal/bytesize"
	"github.com/dlb-lb/dlb/proxy"
)

// The labels dlb reads. The README's label table documents each one.
const (
	LabelEnable  = "dlb.enable"
	LabelPort    = "dlb.port"
	LabelService = "dlb.service"
	LabelHost    = "dlb.host"
	LabelPath    = "dlb.path"

	LabelPathStrip    = "dlb.path.strip"    // true: remove the dlb.path prefix before forwarding
	LabelBalance      = "dlb.balance"       // round_robin, least_conn, random, hash
	LabelHashHeader   = "dlb.hash.header"   // hash on this request header instead of the client IP
	LabelWeight       = "dlb.weight"        // relative share of this container, 1-1000
	LabelSticky       = "dlb.sticky"        // true: pin clients to a replica with a cookie
	LabelStickyCookie = "dlb.sticky.cookie" // the cookie's name
	LabelScheme       = "dlb.scheme"        // http (default) or h2c
	LabelMaxBody      = "dlb.max_body"      // largest request body, e.g. 10m; larger gets 413
	LabelHealthPath   = "dlb.health.path"   // active HTTP check path
	LabelHealthIntvl  = "dlb.health.interval"
	LabelHealthTmout  = "dlb.health.timeout"
	LabelTLS          = "dlb.tls"      // off: no certificate from the ACME CA, no HTTPS redirect
	LabelHSTS         = "dlb.tls.hsts" // true, or a Strict-Transport-Security value
	// LabelHeaderTimeout raises (or lowers) --response-header-timeout for
	// a service whose replicas take long to start answering.
	LabelHeaderTimeout = "dlb.timeout.response_header"
	// LabelMaxInflight is the most requests one replica may have in flight
	// (a number, or auto); --max-inflight is the default.
	LabelMaxInflight = "dlb.max_inflight"
	// LabelQueueMax and LabelQueueTimeout bound the service's queue of
	// requests waiting for a replica with room.
	LabelQueueMax     = "dlb.queue.max"
	LabelQueueTimeout = "dlb.queue.timeout"

	// Compose's own labels, set on every container it creates.
	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
	// Swarm's labels: the task a container runs, the stack a service is of.
	LabelSwarmTask      = "com.docker.swarm.task.id"
	LabelStackNamespace = "com.docker.stack.namespace"
)

// LabelConfig is what a container's dlb.* labels say, checked and normalised.
// The zero value means "no dlb labels": not enabled, default port, service,
// hosts and path.
type LabelConfig struct {
	// Enable is the value of dlb.enable; Set says whether the label was there.
	Enable, EnableSet bool
	// Port is dlb.port, or 0 when the label is absent.
	Port int
	// Service is dlb.service, or "" when the label is absent.
	Service string
	// Hosts are the lower-cased names of dlb.host; empty means any host.
	Hosts []string
	// Path is the dlb.path prefix without a trailing slash, "/" by default.
	Path string
	// Balance is dlb.balance, "" meaning round_robin.
	Balance string
	// Weight is dlb.weight, 1 by default.
	Weight int
	// RouteOptions are how the route forwards (proxy.Route holds the same
	// struct): dlb.path.strip, dlb.sticky, dlb.sticky.cookie,
	// dlb.hash.header, dlb.scheme ("http" by default), dlb.max_body (bytes;
	// 0: no limit) and dlb.timeout.response_header (0: dlb's
	// --response-header-timeout). An option added there is copied to the
	// route and compared with no further edit.
	proxy.RouteOptions
	// HealthPath is dlb.health.path: "" means no active HTTP check.
	HealthPath string
	// HealthInterval and HealthTimeout are dlb.health.interval and
	// dlb.health.timeout (defaults 5s and 2s).
	HealthInterval, HealthTimeout time.Duration
	// TLSOff is dlb.tls=off: the service's hosts get no ACME certificate
	// and no redirect to HTTPS.
	TLSOff bool
	// HSTS is the Strict-Transport-Security value dlb.tls.hsts asks for on
	// HTTPS responses; "" sends none.
	HSTS string
	// MaxInflight is dlb.max_inflight; MaxInflightSet says whether the label
	// was there (else the fleet's default, --max-inflight, applies).
	MaxInflight    balancer.Limit
	MaxInflightSet bool
	// QueueMax and QueueTimeout are dlb.queue.max and dlb.queue.timeout (0:
	// balancer.DefaultQueueMax, and --queue-timeout).
	QueueMax     int
	QueueTimeout time.Duration
}

// LabelError says which label of a container is malformed, with what value,
// and what would be accepted.
type LabelError struct {
	Label, Value, Want string
}

// maxQuoted is how much of a label's value an error quotes: labels are
// set by whoever starts containers, and a log line is no place for a
// megabyte of it.
const maxQuoted = 256

func (e *LabelError) Error() string {
	if len(e.Value) > maxQuoted {
		return fmt.Sprintf("label %s=%q... (%d bytes): %s", e.Label, e.Value[:maxQuoted], len(e.Value), e.Want)
	}
	return fmt.Sprintf("label %s=%q: %s", e.Label, e.Value, e.Want)
}

// ParseLabels reads the dlb.* labels of one container. It never panics; a
// malformed label gives a *LabelError naming the label, the value and what is
// accepted.
func ParseLabels(labels map[string]string) (LabelConfig, error) {
	c := LabelConfig{Path: "/", Weight: 1, RouteOptions: proxy.RouteOptions{Scheme: "http"}, HealthInterval: health.DefaultInterval, HealthTimeout: health.DefaultTimeout}
	for _, lp := range labelParsers {
		if v, ok := labels[lp.label]; ok {
			if hasControl(v) {
				return c, &LabelError{lp.label, v, "contains a control character (a newline, tab or other byte below 0x20, or 0x7f); remove it"}
			}
			if want := lp.parse(&c, v); want != "" {
				return c, &LabelError{lp.label, v, want}
			}
		}
	}
	return c, nil
}

// hasControl reports whether v has a control character. No dlb label takes
// one, and one in a path or header would be sent to replicas as is.
func hasControl(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return true
		}
	}
	return false
}

const wantBool = "not a boolean (use true or false)"

// labelParsers read one label each into a LabelConfig; parse returns ""
// when the value is good, else what the label accepts.
var labelParsers = []struct {
	label string
	parse func(c *LabelConfig, v string) (want string)
}{
	{LabelEnable, func(c *LabelConfig, v string) string {
		return parseBool(v, &c.Enable, &c.EnableSet)
	}},
	{LabelPort, func(c *LabelConfig, v string) string {
		p, err := ParsePort(v)
		if err != nil {
			return "not a port number (1-65535)"
		}
		c.Port = p
		return ""
	}},
	{LabelService, func(c *LabelConfig, v string) string {
		s := strings.TrimSpace(v)
		if !validServiceName(s) {
			return "not a service name (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)"
		}
		c.Service = s
		return ""
	}},
	{LabelHost, func(c *LabelConfig, v string) string {
		hosts, err := parseHosts(v)
		if err != nil {
			return err.Error()
		}
		c.Hosts = hosts
		return ""
	}},
	{LabelPath, func(c *LabelConfig, v string) string {
		p, err := parsePath(v)
		if err != nil {
			return err.Error()
		}
		c.Path = p
		return ""
	}},
	{LabelPathStrip, func(c *LabelConfig, v string) string { return parseBool(v, &c.StripPath, nil) }},
	{LabelBalance, func(c *LabelConfig, v string) string {
		b := strings.TrimSpace(v)
		if !slices.Contains(balancer.PolicyNames, b) {
			return "not a policy (use " + strings.Join(balancer.PolicyNames, ", ") + ")"
		}
		c.Balance = b
		return ""
	}},
	{LabelHashHeader, func(c *LabelConfig, v string) string {
		return parseToken(v, &c.HashHeader, "not a header name (letters, digits and '-')")
	}},
	{LabelWeight, func(c *LabelConfig, v string) string {
		return parseInt(v, &c.Weight, 1, 1000, "not a weight (a whole number from 1 to 1000)")
	}},
	{LabelSticky, func(c *LabelConfig, v string) string { return parseBool(v, &c.Sticky, nil) }},
	{LabelStickyCookie, func(c *LabelConfig, v string) string {
		return parseToken(v, &c.StickyCookie, "not a cookie name (letters, digits, '-' and '_')")
	}},
	{LabelScheme, func(c *LabelConfig, v string) string {
		s := strings.ToLower(strings.TrimSpace(v))
		if s != "http" && s != "h2c" {
			return "not a scheme (use http or h2c)"
		}
		c.Scheme = s
		return ""
	}},
	{LabelMaxBody, func(c *LabelConfig, v string) string {
		n, err := bytesize.Parse(v)
		if err != nil || n < 1 || n > 1<<50 {
			return "not a size (a number of bytes, or with k, m or g, e.g. 10m)"
		}
		c.MaxBody = n
		return ""
	}},
	{LabelHealthPath, func(c *LabelConfig, v string) string {
		p := strings.TrimSpace(v)
		if p != "" {
			if _, err := parsePath(strings.SplitN(p, "?", 2)[0]); err != nil || p[0] != '/' {
				return "not a path (it must start with '/', e.g. /healthz)"
			}
		}
		c.HealthPath = p
		return ""
	}},
	{LabelHealthIntvl, func(c *LabelConfig, v string) string {
		return parseDuration(v, &c.HealthInterval, 100*time.Millisecond, time.Hour, "not a duration from 100ms to 1h (e.g. 5s)")
	}},
	{LabelHealthTmout, func(c *LabelConfig, v string) string {
		return parseDuration(v, &c.HealthTimeout, 10*time.Millisecond, time.Minute, "not a duration from 10ms to 1m (e.g. 2s)")
	}},
	{LabelTLS, func(c *LabelConfig, v string) string {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "on", "true":
			c.TLSOff = false
		case "off", "false":
			c.TLSOff = true
		default:
			return "not on or off"
		}
		return ""
	}},
	{LabelHSTS, func(c *LabelConfig, v string) string {
		h, ok := parseHSTS(v)
		if !ok {
			return "not true, false, or a Strict-Transport-Security value (e.g. max-age=31536000; includeSubDomains)"
		}
		c.HSTS = h
		return ""
	}},
	{LabelHeaderTimeout, func(c *LabelConfig, v string) string {
		return parseDuration(v, &c.ResponseHeaderTimeout, 100*time.Millisecond, 24*time.Hour, "not a duration from 100ms to 24h (e.g. 5m)")
	}},
	{LabelMaxInflight, func(c *LabelConfig, v string) string {
		l, err := balancer.ParseLimit(v)
		if err != nil {
			return err.Error()
		}
		c.MaxInflight, c.MaxInflightSet = l, true
		return ""
	}},
	{LabelQueueMax, func(c *LabelConfig, v string) string {
		return parseInt(v, &c.QueueMax, 1, 1000000, "not a queue length (a whole number from 1 to 1000000)")
	}},
	{LabelQueueTimeout, func(c *LabelConfig, v string) string {
		return parseDuration(v, &c.QueueTimeout, time.Millisecond, time.Hour, "not a duration from 1ms to 1h (e.g. 10s)")
	}},
}

// DefaultHSTS is the Strict-Transport-Security value of dlb.tls.hsts=true:
// one year.
const DefaultHSTS = "max-age=31536000"

// parseHSTS reads dlb.tls.hsts: true (DefaultHSTS), false (none), or a
// header value that starts with max-age= (RFC 6797 §6.1).
func parseHSTS(v string) (string, bool) {
	v = strings.TrimSpace(v)
	switch strings.ToLower(v) {
	case "true":
		return DefaultHSTS, true
	case "false", "":
		return "", true
	}
	age, _, _ := strings.Cut(v, ";")
	n, found := strings.CutPrefix(strings.ToLower(strings.TrimSpace(age)), "max-age=")
	if !found {
		return "", false
	}
	if _, err := strconv.ParseUint(n, 10, 32); err != nil {
		return "", false
	}
	for _, r := range v {
		if r < ' ' || r > '~' || r == '"' || r == ',' {
			return "", false
		}
	}
	return v, true
}

func parseBool(v string, dst, set *bool) string {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return wantBool
	}
	*dst = b
	if set != nil {
		*set = true
	}
	return ""
}

func parseToken(v string, dst *string, want string) string {
	t := strings.TrimSpace(v)
	if !validToken(t) {
		return want
	}
	*dst = t
	return ""
}

func parseInt(v string, dst *int, lo, hi int, want string) string {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return want
	}
	*dst = n
	return ""
}

func parseDuration(v string, dst *time.Duration, lo, hi time.Duration, want string) string {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return want
	}
	*dst = d
	return ""
}

// validToken reports whether s is a non-empty header or cookie name made of
// letters, digits, '-' and '_'.
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParsePort parses a TCP port number, 1 to 65535.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return p, nil
}

func validServiceName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// parseHosts splits a comma-separated list of host names, lower-cases them,
// drops duplicates and sorts them. "*.example.com" is a wildcard for one or
// more labels in front of example.com.
func parseHosts(v string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, h := range strings.Split(v, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if !validHost(h) {
			return nil, fmt.Errorf("%q is not a host name (letters, digits, '-' and '.', optionally starting with \"*.\"; separate several with commas)", h)
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out, nil
}

func validHost(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// parsePath checks a path prefix and removes its trailing slash ("/" stays).
func parsePath(v string) (string, error) {
	p := strings.TrimSpace(v)
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' {
		return "", fmt.Errorf("not a path prefix: it must start with '/', e.g. /api")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '%' || c == '\\' {
			return "", fmt.Errorf("not a path prefix: no spaces, control characters, '?', '#', '%%' or '\\'")
		}
	}
	if strings.Contains(p, "//") || strings.Contains(p+"/", "/../") || strings.Contains(p+"/", "/./") {
		return "", fmt.Errorf("not a clean path prefix: no empty, '.' or '..' segments")
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p, nil
}
