package admin

// The client side of the admin API, for dlb status: it reads a running
// dlb's pools and certificates and prints them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dlb-lb/dlb/certs"
)

// DefaultURL is where dlb status looks for the admin API: dlb's default
// --admin, on this host.
const DefaultURL = "http://127.0.0.1:8080"

// FetchPools reads /api/pools from the admin API at base; its errors say
// what to check, naming --admin-url.
func FetchPools(ctx context.Context, base, token string, timeout time.Duration) ([]Pool, error) {
	var pools []Pool
	_, err := Fetch(ctx, base, token, "/api/pools", timeout, &pools)
	return pools, err
}

// FetchSelf reads /api/self from the admin API at base: which dlb answers
// there. Its errors are Fetch's.
func FetchSelf(ctx context.Context, base, token string, timeout time.Duration) (Self, error) {
	var self Self
	found, err := Fetch(ctx, base, token, "/api/self", timeout, &self)
	if err == nil && !found {
		err = fmt.Errorf("dlb at %s (--admin-url) has no /api/self: it is older than this dlb and cannot hand over its sockets; restart it instead", base)
	}
	return self, err
}

// Fetch decodes the JSON at path of the admin API at base into v,
// sending token (if any) as a bearer token; it reports false, with no
// error, when the path is not there (404).
func Fetch(ctx context.Context, base, token, path string, timeout time.Duration, v any) (bool, error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, fmt.Errorf("--admin-url %q: not an admin address: use http://host:port, e.g. %s", base, DefaultURL)
	}
	endpoint := strings.TrimSuffix(u.String(), "/") + path
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return false, fmt.Errorf("--admin-url %q: %v", base, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("cannot reach dlb's admin API at %s (--admin-url): %v; is dlb running with its admin API on that address (dlb --admin)?", base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return false, fmt.Errorf("GET %s: %s: dlb asks for its admin token; give it with --admin-token or --admin-token-file (DLB_ADMIN_TOKEN)", endpoint, resp.Status)
	}
	if resp.StatusCode == http.StatusNotFound && path != "/api/pools" {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s; is --admin-url %s the address of dlb's admin API (dlb --admin)?", endpoint, resp.Status, base)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return false, fmt.Errorf("GET %s: not dlb's %s (%v); is --admin-url %s the address of dlb's admin API (dlb --admin)?", endpoint, strings.TrimPrefix(path, "/api/"), err, base)
	}
	return true, nil
}

// unwrapURLError drops the "Get URL:" that net/http puts before an error,
// since the message names the address already.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// WriteStatus prints one line per replica (one for a service with none).
func WriteStatus(w io.Writer, pools []Pool) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tHOST/PATH\tREPLICA\tADDRESS\tSTATE\tIN FLIGHT\tREQUESTS")
	for _, p := range pools {
		route := hostPath(p)
		if len(p.Replicas) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\n", p.Name, route)
			continue
		}
		for _, r := range p.Replicas {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", p.Name, route, r.Name, r.Address, r.State, inFlight(r), r.Requests)
		}
	}
	tw.Flush()
	for _, p := range pools {
		if q := p.Queue; q.Queued > 0 || q.Shed > 0 {
			fmt.Fprintf(w, "%s: %d queued (at most %d), %d shed with 503", p.Name, q.Queued, q.Max, q.Shed)
			if q.ReplicasNeeded > 0 {
				fmt.Fprintf(w, "; the offered load (%.0f/s, %.0f/s per replica) needs about %d replicas", q.ArrivalPerS, q.PerReplicaPerS, q.ReplicasNeeded)
			}
			fmt.Fprintln(w)
		}
	}
}

// inFlight shows a replica's requests in flight, and its limit when it has
// one ("3/8", "3/8 auto").
func inFlight(r Replica) string {
	switch {
	case r.Adaptive:
		return fmt.Sprintf("%d/%d auto", r.InFlight, r.Limit)
	case r.Limit > 0:
		return fmt.Sprintf("%d/%d", r.InFlight, r.Limit)
	}
	return fmt.Sprint(r.InFlight)
}

// hostPath shows a pool's route: its hosts ("*" for any), then its path.
func hostPath(p Pool) string {
	host := p.Host
	if host == "" {
		host = "*"
	}
	path := p.Path
	if path == "" {
		path = "/"
	}
	return host + path
}

// NotReady names the services with no ready replica, or is empty.
func NotReady(pools []Pool) string {
	var bad []string
	for _, p := range pools {
		ready := 0
		for _, r := range p.Replicas {
			if r.State == "ready" {
				ready++
			}
		}
		if ready == 0 {
			bad = append(bad, fmt.Sprintf("%s (0 of %d ready)", p.Name, len(p.Replicas)))
		}
	}
	switch len(bad) {
	case 0:
		return ""
	case 1:
		return "service " + bad[0] + " has no ready replica: its requests get 503"
	}
	return "services " + strings.Join(bad, ", ") + " have no ready replica: their requests get 503"
}

// WriteCertificates prints one line per host of the HTTPS listener.
func WriteCertificates(w io.Writer, hosts []certs.HostStatus) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCERTIFICATE\tISSUER\tEXPIRES\tLAST ERROR")
	for _, h := range hosts {
		expires, issuer, last := "-", "-", "-"
		if !h.NotAfter.IsZero() {
			expires = h.NotAfter.Local().Format(time.RFC3339)
		}
		if h.Issuer != "" {
			issuer = h.Issuer
		}
		switch {
		case h.LastError != "":
			last = h.LastErrorAt.Local().Format(time.RFC3339) + " " + h.LastError
		case h.Reason != "":
			last = h.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Host, h.State, issuer, expires, last)
	}
	tw.Flush()
}
