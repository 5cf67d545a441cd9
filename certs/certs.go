// Package certs gives each host dlb serves over HTTPS its certificate. With
// ACME on, every exact host of a service gets one from an ACME CA (Let's
// Encrypt by default) through CertMagic: obtained in the background when
// the host first appears, renewed ahead of expiry, kept in a directory
// that several dlb replicas may share (CertMagic locks it). The HTTPS
// listener picks a host's certificate by SNI and falls back to the default
// certificate, read from files and reloaded when they change. The package
// also answers ACME's challenges (HTTP-01 on the plain listener, TLS-ALPN-01
// on the TLS one), redirects plain HTTP to HTTPS for hosts that have a
// certificate, and adds HSTS where a service asks for it.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"github.com/rs/zerolog"
)

// LetsEncrypt is Let's Encrypt's production ACME directory, the default CA.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// challengePrefix is where ACME's HTTP-01 challenge asks (RFC 8555 §8.3).
const challengePrefix = "/.well-known/acme-challenge/"

// Site is what one service's labels ask of HTTPS.
type Site struct {
	// Hosts are the service's dlb.host names (wildcards are served by the
	// default certificate only).
	Hosts []string
	// Off is dlb.tls=off: no certificate is obtained for these hosts and
	// plain HTTP to them is not redirected.
	Off bool
	// HSTS is the Strict-Transport-Security value sent on HTTPS responses
	// of these hosts (dlb.tls.hsts); "" sends none.
	HSTS string
}

// ACME says where certificates come from; the zero value (no Email) turns
// ACME off.
type ACME struct {
	// Email is the ACME account's contact; "" turns ACME off.
	Email string
	// CA is the ACME directory URL; "" is LetsEncrypt.
	CA string
	// Roots are the roots trusted for the CA's own HTTPS; nil: the system's.
	Roots *x509.CertPool
	// Profile is the CA's certificate profile to ask for (e.g. Let's
	// Encrypt's "shortlived"); "" is the CA's default.
	Profile string
	// NoHTTP01 and NoTLSALPN01 turn off a challenge type (when the CA
	// cannot reach port 80, or 443); at least one must stay on.
	NoHTTP01, NoTLSALPN01 bool
	// Storage is the directory accounts, keys and certificates are kept in.
	Storage string
	// RenewCheck is how often certificates are checked for renewal; 0 is
	// CertMagic's default (10 minutes).
	RenewCheck time.Duration
}

// Options configure a Keeper.
type Options struct {
	ACME ACME
	// Default is the certificate served to hosts without one of their own
	// (nil: none; such handshakes fail). CertFile and KeyFile, when set,
	// are where it came from: they are read again when they change.
	Default           *tls.Certificate
	CertFile, KeyFile string
	// CertDir, if set, is a directory of NAME.crt and NAME.key pairs,
	// each served to the names it is for (before ACME's and the default);
	// it is read again when its files change.
	CertDir string
	// Redirect sends plain HTTP requests for a host that has an ACME
	// certificate to HTTPS with 308 (the ACME challenge path excepted).
	Redirect bool
	// Log gets obtain, renew and reload news.
	Log zerolog.Logger
	// OnResult, if set, is told of each obtain or renewal that succeeded
	// or failed.
	OnResult func(renewal, ok bool)
}

// Keeper holds the certificates of the HTTPS listener. Make one with New,
// tell it the listeners' addresses with Start, and the services' hosts
// with SetSites whenever they change.
type Keeper struct {
	o   Options
	def atomic.Pointer[tls.Certificate]
	dir atomic.Pointer[dirCerts]

	// Set by Start, before any handshake or request; nil without ACME.
	magic   *certmagic.Config
	cache   *certmagic.Cache
	issuer  *certmagic.ACMEIssuer
	ctx     context.Context
	tlsPort string

	hosts atomic.Pointer[hostTable]

	mu      sync.Mutex
	started bool
	sites   []Site
	managed map[string]bool    // hosts handed to CertMagic
	skipped map[string]string  // host → why it gets no certificate
	fails   map[string]failure // host → its last failure, until a success
}

// hostTable is what requests and handshakes read, swapped whole.
type hostTable struct {
	managed map[string]bool   // hosts with ACME on
	hsts    map[string]string // host → Strict-Transport-Security value
}

type failure struct {
	err string
	at  time.Time
}

// New returns a Keeper; it does nothing in the background until Start.
func New(o Options) *Keeper {
	k := &Keeper{o: o, managed: map[string]bool{}, skipped: map[string]string{}, fails: map[string]failure{}}
	if o.Default != nil {
		k.def.Store(o.Default)
	}
	if o.CertDir != "" {
		k.loadDir()
	}
	k.hosts.Store(&hostTable{})
	return k
}

// ACMEOn reports whether certificates come from an ACME CA.
func (k *Keeper) ACMEOn() bool { return k.o.ACME.Email != "" }

// Start begins the work in the background until ctx ends: watching the
// default certificate's files and, with ACME, obtaining and renewing. The
// addresses are those of dlb's plain and TLS listeners, where the ACME
// challenges are answered.
func (k *Keeper) Start(ctx context.Context, httpAddr, tlsAddr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, k.tlsPort, _ = net.SplitHostPort(tlsAddr)
	if k.o.CertFile != "" || k.o.CertDir != "" {
		go k.watchFiles(ctx, 2*time.Second)
	}
	k.ctx, k.started = ctx, true
	if !k.ACMEOn() {
		return
	}
	zl := zapToZerolog(k.o.Log)
	var magic *certmagic.Config
	k.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: k.o.ACME.RenewCheck,
		Logger:             zl,
	})
	magic = certmagic.New(k.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: k.o.ACME.Storage},
		OnEvent: k.onEvent,
		Logger:  zl,
		// Let's Encrypt ended OCSP in 2025; stapling would only cost
		// requests to responders that are not there.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	ca := k.o.ACME.CA
	if ca == "" {
		ca = LetsEncrypt
	}
	httpHost, httpPort, _ := net.SplitHostPort(httpAddr)
	hp, _ := strconv.Atoi(httpPort)
	tp, _ := strconv.Atoi(k.tlsPort)
	// CertMagic answers challenges on its own listener unless the port is
	// taken: pointing it at dlb's own listeners makes it leave them to
	// HTTPHandler and GetCertificate.
	k.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA: ca, Email: k.o.ACME.Email, Agreed: true, TrustedRoots: k.o.ACME.Roots, Profile: k.o.ACME.Profile,
		ListenHost: httpHost, AltHTTPPort: hp, AltTLSALPNPort: tp, Logger: zl,
		DisableHTTPChallenge: k.o.ACME.NoHTTP01, DisableTLSALPNChallenge: k.o.ACME.NoTLSALPN01,
	})
	magic.Issuers = []certmagic.Issuer{k.issuer}
	k.magic = magic
	k.o.Log.Info().Str("ca", ca).Str("storage", k.o.ACME.Storage).Str("profile", k.o.ACME.Profile).
		Bool("http_redirect", k.o.Redirect).Msg("automatic HTTPS: certificates from the ACME CA for every exact dlb.host")
	go func() {
		<-ctx.Done()
		k.cache.Stop()
	}()
	k.applyLocked()
}

// SetSites tells the Keeper every service's hosts and HTTPS settings. New
// exact hosts start getting their certificate in the background; hosts no
// service claims any more are no longer managed.
func (k *Keeper) SetSites(sites []Site) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sites = sites
	k.applyLocked()
}

func (k *Keeper) applyLocked() {
	t := &hostTable{managed: map[string]bool{}, hsts: map[string]string{}}
	var start []string
	for _, s := range k.sites {
		for _, h := range s.Hosts {
			if s.HSTS != "" {
				t.hsts[h] = s.HSTS
			}
			if s.Off || !k.ACMEOn() {
				continue
			}
			if why := ineligible(h); why != "" {
				if _, warned := k.skipped[h]; !warned {
					k.o.Log.Warn().Str("host", h).Msgf("no certificate from the CA for %s: %s; it gets the default certificate (--tls-cert), if any", h, why)
				}
				k.skipped[h] = why
				continue
			}
			t.managed[h] = true
		}
	}
	k.hosts.Store(t)
	if !k.started || k.magic == nil {
		return
	}
	var stop []certmagic.SubjectIssuer
	for h := range k.managed {
		if !t.managed[h] {
			delete(k.managed, h)
			delete(k.fails, h)
			stop = append(stop, certmagic.SubjectIssuer{Subject: h})
		}
	}
	for h := range t.managed {
		if !k.managed[h] {
			k.managed[h] = true
			start = append(start, h)
		}
	}
	for h := range k.skipped {
		if !t.managed[h] && !slices.ContainsFunc(k.sites, func(s Site) bool { return slices.Contains(s.Hosts, h) }) {
			delete(k.skipped, h)
		}
	}
	if len(stop) > 0 {
		k.cache.RemoveManaged(stop)
	}
	if len(start) > 0 {
		slices.Sort(start)
		k.o.Log.Info().Strs("hosts", start).Msg("getting certificates (from storage, else from the CA, in the background)")
		if err := k.magic.ManageAsync(k.ctx, start); err != nil {
			k.o.Log.Error().Err(err).Strs("hosts", start).Msg("could not start managing certificates")
		}
	}
}

// ineligible says why a CA would not issue for host, or "".
func ineligible(h string) string {
	switch {
	case strings.HasPrefix(h, "*."):
		return "a wildcard needs the DNS-01 challenge, which dlb does not do"
	case net.ParseIP(h) != nil:
		return "an IP address"
	case !certmagic.SubjectQualifiesForPublicCert(h):
		return "not a public name (localhost, .local, .internal, or a private address)"
	case !strings.Contains(h, "."):
		return "not a public name (no dot)"
	}
	return ""
}

// onEvent follows CertMagic's events: results for metrics and status.
func (k *Keeper) onEvent(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtained", "cert_failed":
	default:
		return nil
	}
	host, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	ok := event == "cert_obtained"
	if k.o.OnResult != nil {
		k.o.OnResult(renewal, ok)
	}
	what := "obtained"
	if renewal {
		what = "renewed"
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if ok {
		delete(k.fails, host)
		k.o.Log.Info().Str("host", host).Str("issuer", fmt.Sprint(data["issuer"])).Msg("certificate " + what)
		return nil
	}
	err, _ := data["error"].(error)
	msg := caMessage(err)
	k.fails[host] = failure{err: msg, at: time.Now()}
	k.o.Log.Warn().Str("host", host).Bool("renewal", renewal).Str("ca_says", msg).
		Msg("the CA did not issue a certificate; retrying with backoff, the host keeps its current (or the default) certificate meanwhile")
	return nil
}

// caMessage is the CA's own words when err carries an ACME problem, else
// err's text.
func caMessage(err error) string {
	if err == nil {
		return "unknown error"
	}
	var p acme.Problem
	if errors.As(err, &p) {
		return p.Error()
	}
	return err.Error()
}

// GetCertificate picks the certificate of a handshake: the ACME
// challenge's for TLS-ALPN-01, the host's own when it has one, else the
// default.
func (k *Keeper) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	// RFC 8737 §3: the CA offers acme-tls/1 alone.
	if k.magic != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "acme-tls/1" {
		return k.magic.GetCertificate(hello)
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if d := k.dir.Load(); d != nil && name != "" {
		if c := d.forHost(name); c != nil {
			return c, nil
		}
	}
	if c := k.own(name); c != nil {
		return &c.Certificate, nil
	}
	if d := k.def.Load(); d != nil {
		return d, nil
	}
	if name == "" {
		return nil, errors.New("dlb: the client sent no server name (SNI) and there is no default certificate (--tls-cert)")
	}
	return nil, fmt.Errorf("dlb: no certificate for %q yet, and no default certificate (--tls-cert)", name)
}

// own is host's ACME certificate that is valid now (the latest), or nil.
func (k *Keeper) own(host string) *certmagic.Certificate {
	if k.cache == nil || host == "" || !k.hosts.Load().managed[host] {
		return nil
	}
	var best *certmagic.Certificate
	now := time.Now()
	for _, c := range k.cache.AllMatchingCertificates(host) {
		if c.Leaf == nil || now.After(c.Leaf.NotAfter) || now.Before(c.Leaf.NotBefore) {
			continue
		}
		if best == nil || c.Leaf.NotAfter.After(best.Leaf.NotAfter) {
			best = &c
		}
	}
	return best
}

// TLSConfig is the HTTPS listener's configuration: TLS 1.2 or later,
// certificates by SNI, and ALPN's acme-tls/1 for the TLS-ALPN-01
// challenge (net/http adds h2 and http/1.1).
func (k *Keeper) TLSConfig() *tls.Config {
	tc := &tls.Config{GetCertificate: k.GetCertificate, MinVersion: tls.VersionTLS12}
	if k.ACMEOn() {
		tc.NextProtos = []string{"h2", "http/1.1", "acme-tls/1"}
	}
	return tc
}

// Intercepts reports whether HTTPHandler answers a plain HTTP request for
// host and path itself (an ACME challenge, or a redirect to HTTPS) rather
// than pass it on: a data path that bypasses HTTPHandler hands such
// requests to it.
func (k *Keeper) Intercepts(host, path string) bool {
	if !k.ACMEOn() {
		return false
	}
	return strings.HasPrefix(path, challengePrefix) || k.redirects(hostOnly(host))
}

// redirects reports whether plain HTTP to host goes to HTTPS: redirects
// are on and the host has its ACME certificate.
func (k *Keeper) redirects(host string) bool {
	return k.o.Redirect && k.own(host) != nil
}

// HTTPHandler wraps the plain listener's handler: it answers ACME's
// HTTP-01 challenges and redirects (308) requests for hosts with an ACME
// certificate to HTTPS, unless Options.Redirect is off.
func (k *Keeper) HTTPHandler(next http.Handler) http.Handler {
	if !k.ACMEOn() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, challengePrefix) {
			if k.issuer != nil && k.issuer.HandleHTTPChallenge(w, r) {
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if host := hostOnly(r.Host); k.redirects(host) {
			target := "https://" + host
			if k.tlsPort != "" && k.tlsPort != "443" {
				target += ":" + k.tlsPort
			}
			http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// HTTPSHandler wraps the TLS listener's handler: it adds HSTS to the
// responses of hosts whose service asks for it.
func (k *Keeper) HTTPSHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := k.HSTS(r.Host); v != "" {
			w.Header().Set("Strict-Transport-Security", v)
		}
		next.ServeHTTP(w, r)
	})
}

// HSTS is the Strict-Transport-Security value HTTPSHandler adds to the
// responses for a request's Host ("": none), for a data path that
// bypasses HTTPSHandler.
func (k *Keeper) HSTS(host string) string {
	hsts := k.hosts.Load().hsts
	if len(hsts) == 0 {
		return ""
	}
	return hsts[hostOnly(host)]
}

// hostOnly is the lower-cased host of a Host header, without its port
// (and without allocating when it is lower case already).
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			return host
		}
		return strings.Trim(h, "[]")
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// HostStatus is one host's certificate, as dlb status and the dashboard
// show it.
type HostStatus struct {
	Host string `json:"host"`
	// State is "valid" (served its own certificate), "obtaining" (none
	// yet), "failing" (the CA refused; LastError says why), "expired", or
	// "skipped" (no certificate can be had: Reason says why).
	State       string    `json:"state"`
	Issuer      string    `json:"issuer,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Reason      string    `json:"reason,omitempty"`
}

// Status returns each host's certificate state, sorted by host.
func (k *Keeper) Status() []HostStatus {
	k.mu.Lock()
	hosts := make([]string, 0, len(k.managed)+len(k.skipped))
	for h := range k.managed {
		hosts = append(hosts, h)
	}
	fails := make(map[string]failure, len(k.fails))
	for h, f := range k.fails {
		fails[h] = f
	}
	out := make([]HostStatus, 0, len(hosts)+len(k.skipped))
	for h, why := range k.skipped {
		out = append(out, HostStatus{Host: h, State: "skipped", Reason: why})
	}
	k.mu.Unlock()
	for _, h := range hosts {
		s := HostStatus{Host: h, State: "obtaining"}
		if c := k.latest(h); c != nil {
			s.Issuer, s.NotAfter = c.Leaf.Issuer.CommonName, c.Leaf.NotAfter
			s.State = "valid"
			if time.Now().After(c.Leaf.NotAfter) {
				s.State = "expired"
			}
		}
		if f, ok := fails[h]; ok {
			s.LastError, s.LastErrorAt = f.err, f.at
			if s.State != "valid" {
				s.State = "failing"
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b HostStatus) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// latest is the host's certificate with the latest expiry, even expired.
func (k *Keeper) latest(host string) *certmagic.Certificate {
	var best *certmagic.Certificate
	for _, c := range k.cache.AllMatchingCertificates(host) {
		if c.Leaf != nil && (best == nil || c.Leaf.NotAfter.After(best.Leaf.NotAfter)) {
			best = &c
		}
	}
	return best
}

// watchFiles reloads the default certificate and the certificate
// directory when their files change, checking every interval; a bad pair
// is logged and the old one kept.
func (k *Keeper) watchFiles(ctx context.Context, every time.Duration) {
	last, lastDir := stamp(k.o.CertFile, k.o.KeyFile), dirStamp(k.o.CertDir)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if k.o.CertDir != "" {
			if now := dirStamp(k.o.CertDir); now != lastDir {
				lastDir = now
				k.loadDir()
			}
		}
		if k.o.CertFile == "" {
			continue
		}
		now := stamp(k.o.CertFile, k.o.KeyFile)
		if now == last {
			continue
		}
		last = now
		c, err := tls.LoadX509KeyPair(k.o.CertFile, k.o.KeyFile)
		if err != nil {
			// A cert and key written one after the other mismatch for a
			// moment: the next change is tried again.
			k.o.Log.Warn().Err(err).Str("cert", k.o.CertFile).Str("key", k.o.KeyFile).
				Msg("default certificate changed but cannot be loaded; still serving the previous one")
			continue
		}
		k.def.Store(&c)
		k.o.Log.Info().Str("cert", k.o.CertFile).Msg("default certificate reloaded")
	}
}

// loadDir reads Options.CertDir; an unreadable directory keeps the
// certificates it had.
func (k *Keeper) loadDir() {
	d := loadDir(k.o.CertDir, k.o.Log)
	if d == nil {
		return
	}
	k.dir.Store(&d)
	k.o.Log.Info().Str("dir", k.o.CertDir).Strs("names", d.names()).Msg("certificate directory loaded")
}

// stamp sums up two files' sizes and modification times.
func stamp(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("-;")
		}
	}
	return b.String()
}
