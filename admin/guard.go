package admin

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Guard closes the admin API to those who should not read it. The zero
// value lets in requests whose Host is an IP literal or localhost, with no
// token.
type Guard struct {
	// Hosts are further names (lower-case, without port) accepted in the
	// Host header, e.g. the name Prometheus scrapes dlb by. Only IP
	// literals and localhost are accepted otherwise, so that a web page
	// whose name an attacker points at dlb (DNS rebinding) cannot read it.
	Hosts []string
	// Token, when not empty, must come as "Authorization: Bearer <token>"
	// or in the cookie the dashboard gets from /?token=<token>. /healthz
	// needs none.
	Token string
}

// TokenCookie is the cookie the dashboard keeps the admin token in.
const TokenCookie = "dlb_admin_token"

// Wrap returns next behind the guard.
func (g Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.hostAllowed(r.Host) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusMisdirectedRequest)
			w.Write([]byte("dlb admin: Host " + quoteShort(r.Host) + " is not allowed: use an IP address or localhost, or list the name in dlb's --admin-hosts\n"))
			return
		}
		if g.Token == "" || r.URL.Path == "/healthz" || g.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/" && r.URL.Query().Has("token") {
			if !g.equal(r.URL.Query().Get("token")) {
				unauthorized(w)
				return
			}
			// The dashboard's EventSource cannot send a header: keep the
			// token in a cookie only this origin's scripts send.
			http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: g.Token, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((30 * 24 * time.Hour).Seconds())})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		unauthorized(w)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("WWW-Authenticate", `Bearer realm="dlb admin"`)
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("dlb admin: send the admin token (--admin-token): Authorization: Bearer <token>, dlb status --admin-token, or open /?token=<token> once for the dashboard\n"))
}

func (g Guard) authorized(r *http.Request) bool {
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return g.equal(strings.TrimSpace(auth[7:]))
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return g.equal(c.Value)
	}
	return false
}

// equal compares in constant time, so that the time taken tells nothing
// of the token.
func (g Guard) equal(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(g.Token)) == 1
}

// hostAllowed reports whether a Host header names dlb: an IP literal,
// localhost, or one of Hosts.
func (g Guard) hostAllowed(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	for _, a := range g.Hosts {
		if h == a {
			return true
		}
	}
	return false
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?") + `"`
}
