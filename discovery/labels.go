package discovery

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The labels dlb reads. The README's label table documents each one.
const (
	LabelEnable  = "dlb.enable"
	LabelPort    = "dlb.port"
	LabelService = "dlb.service"
	LabelHost    = "dlb.host"
	LabelPath    = "dlb.path"

	// Compose's own labels, set on every container it creates.
	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
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
}

// LabelError says which label of a container is malformed, with what value,
// and what would be accepted.
type LabelError struct {
	Label, Value, Want string
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("label %s=%q: %s", e.Label, e.Value, e.Want)
}

// ParseLabels reads the dlb.* labels of one container. It never panics; a
// malformed label gives a *LabelError naming the label, the value and what is
// accepted.
func ParseLabels(labels map[string]string) (LabelConfig, error) {
	c := LabelConfig{Path: "/"}
	if v, ok := labels[LabelEnable]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return c, &LabelError{LabelEnable, v, "not a boolean (use true or false)"}
		}
		c.Enable, c.EnableSet = b, true
	}
	if v, ok := labels[LabelPort]; ok {
		p, err := ParsePort(v)
		if err != nil {
			return c, &LabelError{LabelPort, v, "not a port number (1-65535)"}
		}
		c.Port = p
	}
	if v, ok := labels[LabelService]; ok {
		s := strings.TrimSpace(v)
		if !validServiceName(s) {
			return c, &LabelError{LabelService, v, "not a service name (1-128 letters, digits, '.', '_' or '-', starting with a letter or digit)"}
		}
		c.Service = s
	}
	if v, ok := labels[LabelHost]; ok {
		hosts, err := parseHosts(v)
		if err != nil {
			return c, &LabelError{LabelHost, v, err.Error()}
		}
		c.Hosts = hosts
	}
	if v, ok := labels[LabelPath]; ok {
		p, err := parsePath(v)
		if err != nil {
			return c, &LabelError{LabelPath, v, err.Error()}
		}
		c.Path = p
	}
	return c, nil
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
