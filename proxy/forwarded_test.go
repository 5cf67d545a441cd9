package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, wantErr string
	}{
		{name: "empty trusts nobody", in: "", want: ""},
		{name: "blanks only", in: " , ,", want: ""},
		{name: "one CIDR", in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{name: "one address", in: "192.168.1.10", want: "192.168.1.10"},
		{name: "a list with blanks", in: " 10.0.0.0/8 , ::1,172.16.0.0/12 ", want: "10.0.0.0/8,::1,172.16.0.0/12"},
		{name: "host bits are masked", in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{name: "IPv4-mapped address", in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{name: "IPv4-mapped CIDR", in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{name: "IPv6 CIDR", in: "fd00::/8", want: "fd00::/8"},
		{name: "bad address", in: "10.0.0.300", wantErr: `"10.0.0.300" is not an IP address or a CIDR`},
		{name: "host name", in: "10.0.0.1,proxy.local", wantErr: `"proxy.local" is not an IP address`},
		{name: "bad prefix length", in: "10.0.0.0/33", wantErr: `"10.0.0.0/33" is not a CIDR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTrustedProxies(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTrustedProxies(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTrustedProxies(%q): %v", tc.in, err)
			}
			if got.String() != tc.want {
				t.Errorf("ParseTrustedProxies(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTrustedProxiesTrusts(t *testing.T) {
	tp, err := ParseTrustedProxies("10.0.0.0/8,192.168.1.10,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote string
		want   bool
	}{
		{"10.2.3.4:5000", true},
		{"11.0.0.1:5000", false},
		{"192.168.1.10:80", true},
		{"192.168.1.11:80", false},
		{"[::ffff:10.0.0.7]:80", true}, // an IPv4 client on a dual-stack socket
		{"[fd00::1]:443", true},
		{"[fd00::1%eth0]:443", true},
		{"[fe80::1]:443", false},
		{"not an address", false},
		{"@", false}, // a unix socket's RemoteAddr
	} {
		if got := tp.Trusts(tc.remote); got != tc.want {
			t.Errorf("Trusts(%q) = %v, want %v", tc.remote, got, tc.want)
		}
	}
	if (TrustedProxies(nil)).Trusts("10.0.0.1:1") {
		t.Error("the zero TrustedProxies trusts 10.0.0.1, want nobody")
	}
}

// TestForwardedHeaders sends requests with and without X-Forwarded-* through
// a real proxy to a replica that echoes them back.
func TestForwardedHeaders(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip", "Proxy-Authorization"} {
			w.Header()["Echo-"+h] = r.Header.Values(h)
		}
		w.Header().Set("Echo-Host", r.Host)
	})
	loopback, _ := ParseTrustedProxies("127.0.0.0/8,::1")
	elsewhere, _ := ParseTrustedProxies("203.0.113.0/24")
	spoofed := map[string]string{
		"X-Forwarded-For":   "198.51.100.1, 198.51.100.2",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "www.example.com",
		"Forwarded":         "for=198.51.100.1",
		"X-Real-Ip":         "198.51.100.1",
		// Hop-by-hop: for dlb, never passed on.
		"Proxy-Authorization": "Basic Zm9vOmJhcg==",
	}
	for _, tc := range []struct {
		name    string
		trusted TrustedProxies
		tls     bool
		in      map[string]string
		want    map[string]string // "" means absent
	}{
		{
			name: "plain client",
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test", "Forwarded": ""},
		},
		{
			name: "untrusted client's headers are replaced",
			in:   spoofed, trusted: elsewhere,
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test", "Forwarded": "", "X-Real-Ip": "", "Proxy-Authorization": ""},
		},
		{
			name: "trusted proxy's headers are kept, its address appended",
			in:   spoofed, trusted: loopback,
			want: map[string]string{"X-Forwarded-For": "198.51.100.1, 198.51.100.2, 127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.com", "Forwarded": "", "X-Real-Ip": "198.51.100.1", "Proxy-Authorization": ""},
		},
		{
			name:    "trusted proxy that sent none",
			trusted: loopback,
			want:    map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test"},
		},
		{
			name: "TLS client",
			tls:  true,
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.test"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := newTestFront(t, echo, Route{}, Options{TrustedProxies: tc.trusted}, tc.tls)
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			req.Host = "app.test"
			for k, v := range tc.in {
				req.Header.Set(k, v)
			}
			resp := doTest(t, front.Client(), req)
			resp.Body.Close()
			if got := resp.Header.Get("Echo-Host"); got != "app.test" {
				t.Errorf("the replica saw Host %q, want app.test", got)
			}
			for h, want := range tc.want {
				if got := strings.Join(resp.Header.Values("Echo-"+h), " | "); got != want {
					t.Errorf("the replica saw %s: %q, want %q", h, got, want)
				}
			}
		})
	}
}

func TestForwardingField(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"Forwarded", true}, {"x-forwarded-for", true}, {"X-Forwarded-Host", true}, {"X-FORWARDED-PROTO", true},
		{"X-Real-Ip", true}, {"X-Forwarded-Port", true}, {"X-Forwarded-Prefix", true}, {"X-Original-Url", true},
		{"Host", false}, {"Accept", false}, {"X-Request-Id", false}, {"Forwarded-For", false}, {"Connection", false},
	} {
		if got := forwardingField([]byte(tc.name)); got != tc.want {
			t.Errorf("forwardingField(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
