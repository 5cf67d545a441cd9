package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"sync"

	"github.com/dlb-lb/dlb/balancer"
)

// Sticky sessions (label dlb.sticky=true): a cookie pins a client to a
// replica. Its value is an HMAC of the replica's container ID under a key
// drawn at random when dlb starts, truncated: it reveals neither the ID nor
// the address, cannot be forged to reach a replica of the attacker's choice
// (only the tokens dlb handed out match), and is looked up among the pool's
// ready replicas. A client whose replica drains, stops or is unknown (a
// token from before a restart of dlb, which draws a new key, or from
// another service) is balanced as any other and gets a new cookie; nothing
// fails. Routes without dlb.sticky never read or set the cookie.

// stickyTokenBytes is how much of the HMAC a token keeps: 96 bits, 16
// characters of base64.
const stickyTokenBytes = 12

// stickyPins turns replicas into cookie tokens and back.
type stickyPins struct {
	key     []byte
	indexes sync.Map // *balancer.Pool -> *stickyIndex
}

// stickyIndex maps the tokens of one pool's upstreams, as of one snapshot.
type stickyIndex struct {
	all     []*balancer.Upstream // the pool's Upstreams() it was built from
	byToken map[string]*balancer.Upstream
	tokenOf map[*balancer.Upstream]string
}

// newStickyPins returns pins with a fresh random key.
func newStickyPins() *stickyPins {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand, Go 1.24 and later)
	return &stickyPins{key: key}
}

func (s *stickyPins) token(u *balancer.Upstream) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(u.ID()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:stickyTokenBytes])
}

// index returns the token index of pool's current upstreams, rebuilding it
// (with the tokens of the upstreams that stayed reused) when the pool has
// changed since.
func (s *stickyPins) index(pool *balancer.Pool) *stickyIndex {
	all := pool.Upstreams()
	var old *stickyIndex
	if v, ok := s.indexes.Load(pool); ok {
		old = v.(*stickyIndex)
		if len(old.all) == len(all) && (len(all) == 0 || &old.all[0] == &all[0]) {
			return old
		}
	}
	idx := &stickyIndex{all: all, byToken: make(map[string]*balancer.Upstream, len(all)), tokenOf: make(map[*balancer.Upstream]string, len(all))}
	for _, u := range all {
		tok, ok := "", false
		if old != nil {
			tok, ok = old.tokenOf[u]
		}
		if !ok {
			tok = s.token(u)
		}
		idx.byToken[tok] = u
		idx.tokenOf[u] = tok
	}
	s.indexes.Store(pool, idx)
	return idx
}

// pinned returns the ready replica the request's cookie pins it to, and the
// cookie's token; nil when there is no cookie, or its replica is not ready
// or unknown.
func (s *stickyPins) pinned(r *http.Request, route *Route) (*balancer.Upstream, string) {
	c, err := r.Cookie(route.cookieName)
	if err != nil || c.Value == "" {
		return nil, ""
	}
	u := s.index(route.Pool).byToken[c.Value]
	if u == nil || u.State() != balancer.Ready {
		return nil, c.Value
	}
	return u, c.Value
}

// pin adds to h the cookie that pins the client to u, unless the request's
// cookie (token had) already does. secure says the request came over TLS.
func (s *stickyPins) pin(h http.Header, route *Route, u *balancer.Upstream, had string, secure bool) {
	tok, ok := s.index(route.Pool).tokenOf[u]
	if !ok { // u left the pool while the request was under way
		tok = s.token(u)
	}
	if tok == had {
		return
	}
	c := http.Cookie{Name: route.cookieName, Value: tok, Path: route.Path, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
	h.Add("Set-Cookie", c.String())
}

// modifyResponse records the replica's status (an adaptive limit learns
// from it) and sets the sticky cookie on a response of a sticky route,
// naming the replica that answered (after retries, if any).
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if a, ok := resp.Request.Context().Value(stateKey{}).(*attempt); ok {
		a.status = resp.StatusCode
		if a.route.Sticky {
			p.sticky.pin(resp.Header, a.route, a.up, a.pinned, a.secure)
		}
	}
	return nil
}

// defaultCookieName is dlb_ and the service's name made a safe cookie name:
// letters, digits and '_'. A name longer than 32 characters keeps its first
// 23 and a hash of the whole, so that two long names stay apart.
func defaultCookieName(service string) string {
	b := make([]byte, 0, 4+len(service))
	b = append(b, "dlb_"...)
	for i := 0; i < len(service); i++ {
		c := service[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		default:
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) > 4+32 {
		b = append(b[:4+23], '_')
		b = strconv.AppendUint(b, balancer.KeyOf(service)&0xffffffff, 16)
	}
	return string(b)
}
