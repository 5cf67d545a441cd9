package discovery_test

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dlb-lb/dlb/balancer"
	"github.com/dlb-lb/dlb/discovery"
	"github.com/dlb-lb/dlb/proxy"
)

// labelTest is one ParseLabels case: either want (and no error), or an error
// whose text holds every string of wantErr.
type labelTest struct {
	name    string
	labels  map[string]string
	want    discovery.LabelConfig
	wantErr []string
}

// cfg is the LabelConfig of a container with no dlb labels, changed by fs.
func cfg(fs ...func(*discovery.LabelConfig)) discovery.LabelConfig {
	c := discovery.LabelConfig{Path: "/", Weight: 1, RouteOptions: proxy.RouteOptions{Scheme: "http"}, HealthInterval: 5 * time.Second, HealthTimeout: 2 * time.Second}
	for _, f := range fs {
		f(&c)
	}
	return c
}

func enable(b bool) func(*discovery.LabelConfig) {
	return func(c *discovery.LabelConfig) { c.Enable, c.EnableSet = b, true }
}
func port(p int) func(*discovery.LabelConfig) {
	return func(c *discovery.LabelConfig) { c.Port = p }
}
func service(s string) func(*discovery.LabelConfig) {
	return func(c *discovery.LabelConfig) { c.Service = s }
}
func hosts(h ...string) func(*discovery.LabelConfig) {
	return func(c *discovery.LabelConfig) { c.Hosts = h }
}
func path(p string) func(*discovery.LabelConfig) {
	return func(c *discovery.LabelConfig) { c.Path = p }
}

// bad is a case whose one label is malformed: the error must name the label,
// quote the value, and say what is accepted.
func bad(name, label, value, accepted string) labelTest {
	return labelTest{
		name:    name,
		labels:  map[string]string{label: value},
		wantErr: []string{label, strconv.Quote(value), accepted},
	}
}

func good(name, label, value string, want discovery.LabelConfig) labelTest {
	return labelTest{name: name, labels: map[string]string{label: value}, want: want}
}

func TestParseLabels(t *testing.T) {
	const (
		boolWant    = "use true or false"
		portWant    = "1-65535"
		serviceWant = "1-128 letters, digits"
		hostWant    = "is not a host name"
		pathStart   = "must start with '/'"
		pathChars   = "no spaces, control characters"
		pathClean   = "no empty, '.' or '..' segments"
	)
	long := strings.Repeat("a", 128)
	label63 := strings.Repeat("b", 63)

	tests := []labelTest{
		{name: "no labels", labels: nil, want: cfg()},
		{name: "other labels only", labels: map[string]string{"traefik.enable": "garbage", "com.docker.compose.service": "web"}, want: cfg()},
		{
			name: "every label",
			labels: map[string]string{
				discovery.LabelEnable: "true", discovery.LabelPort: "8080", discovery.LabelService: "web",
				discovery.LabelHost: "b.example.com,a.example.com", discovery.LabelPath: "/api/",
			},
			want: cfg(enable(true), port(8080), service("web"), hosts("a.example.com", "b.example.com"), path("/api")),
		},

		// dlb.enable
		good("enable true", discovery.LabelEnable, "true", cfg(enable(true))),
		good("enable false", discovery.LabelEnable, "false", cfg(enable(false))),
		good("enable upper case and spaces", discovery.LabelEnable, " TRUE ", cfg(enable(true))),
		good("enable 1", discovery.LabelEnable, "1", cfg(enable(true))),
		good("enable 0", discovery.LabelEnable, "0", cfg(enable(false))),
		bad("enable garbage", discovery.LabelEnable, "garbage", boolWant),
		bad("enable yes", discovery.LabelEnable, "yes", boolWant),
		bad("enable empty", discovery.LabelEnable, "", boolWant),

		// dlb.port
		bad("port 0", discovery.LabelPort, "0", portWant),
		good("port 1", discovery.LabelPort, "1", cfg(port(1))),
		good("port 65535", discovery.LabelPort, "65535", cfg(port(65535))),
		bad("port 65536", discovery.LabelPort, "65536", portWant),
		bad("port name", discovery.LabelPort, "http", portWant),
		good("port with spaces", discovery.LabelPort, " 80 ", cfg(port(80))),
		bad("port negative", discovery.LabelPort, "-1", portWant),
		bad("port empty", discovery.LabelPort, "", portWant),
		bad("port with protocol", discovery.LabelPort, "80/tcp", portWant),
		bad("port huge", discovery.LabelPort, "99999999999999999999", portWant),

		// dlb.service
		good("service plain", discovery.LabelService, "web", cfg(service("web"))),
		good("service every allowed character", discovery.LabelService, "My_app.v2-blue", cfg(service("My_app.v2-blue"))),
		good("service trimmed", discovery.LabelService, "  web  ", cfg(service("web"))),
		good("service starting with a digit", discovery.LabelService, "1web", cfg(service("1web"))),
		good("service 128 characters", discovery.LabelService, long, cfg(service(long))),
		bad("service 129 characters", discovery.LabelService, long+"a", serviceWant),
		bad("service empty", discovery.LabelService, "", serviceWant),
		bad("service blank", discovery.LabelService, "   ", serviceWant),
		bad("service starting with a dash", discovery.LabelService, "-web", serviceWant),
		bad("service starting with a dot", discovery.LabelService, ".web", serviceWant),
		bad("service starting with an underscore", discovery.LabelService, "_web", serviceWant),
		bad("service with a space", discovery.LabelService, "web app", serviceWant),
		bad("service with a slash", discovery.LabelService, "web/1", serviceWant),
		bad("service with a colon", discovery.LabelService, "web:1", serviceWant),
		bad("service not ASCII", discovery.LabelService, "wéb", serviceWant),

		// dlb.host
		good("host one", discovery.LabelHost, "example.com", cfg(hosts("example.com"))),
		good("host list sorted", discovery.LabelHost, "b.example.com,a.example.com", cfg(hosts("a.example.com", "b.example.com"))),
		good("host list with spaces", discovery.LabelHost, "  b.example.com , a.example.com  ", cfg(hosts("a.example.com", "b.example.com"))),
		good("host duplicates dropped", discovery.LabelHost, "a.example.com,A.EXAMPLE.COM, a.example.com", cfg(hosts("a.example.com"))),
		good("host upper case lowered", discovery.LabelHost, "Api.Example.COM", cfg(hosts("api.example.com"))),
		good("host empty items skipped", discovery.LabelHost, "a.example.com,,b.example.com,", cfg(hosts("a.example.com", "b.example.com"))),
		good("host empty means any", discovery.LabelHost, "", cfg()),
		good("host only commas means any", discovery.LabelHost, " , ,", cfg()),
		good("host wildcard", discovery.LabelHost, "*.example.com", cfg(hosts("*.example.com"))),
		good("host wildcard and apex", discovery.LabelHost, "example.com,*.Example.com", cfg(hosts("*.example.com", "example.com"))),
		good("host single label", discovery.LabelHost, "localhost", cfg(hosts("localhost"))),
		good("host IPv4 address", discovery.LabelHost, "10.0.0.1", cfg(hosts("10.0.0.1"))),
		good("host 63-character label", discovery.LabelHost, label63+".example.com", cfg(hosts(label63+".example.com"))),
		bad("host 64-character label", discovery.LabelHost, label63+"b.example.com", hostWant),
		bad("host longer than 253", discovery.LabelHost, strings.Repeat(label63+".", 4)+"com", hostWant),
		bad("host with a space inside", discovery.LabelHost, "exa mple.com", hostWant),
		bad("host with a port", discovery.LabelHost, "example.com:8080", hostWant),
		bad("host as a URL", discovery.LabelHost, "http://example.com", hostWant),
		bad("host bare wildcard", discovery.LabelHost, "*", hostWant),
		bad("host wildcard not in front", discovery.LabelHost, "api.*.example.com", hostWant),
		bad("host double wildcard", discovery.LabelHost, "*.*.example.com", hostWant),
		bad("host wildcard with nothing after", discovery.LabelHost, "*.", hostWant),
		bad("host label starting with a dash", discovery.LabelHost, "-api.example.com", hostWant),
		bad("host label ending with a dash", discovery.LabelHost, "api-.example.com", hostWant),
		bad("host empty label", discovery.LabelHost, "api..example.com", hostWant),
		bad("host trailing dot", discovery.LabelHost, "example.com.", hostWant),
		bad("host one bad among good", discovery.LabelHost, "good.example.com, bad!.example.com", `"bad!.example.com"`),
		bad("host separated by semicolons", discovery.LabelHost, "a.example.com;b.example.com", hostWant),

		// dlb.path
		good("path root", discovery.LabelPath, "/", cfg(path("/"))),
		good("path trailing slash removed", discovery.LabelPath, "/api/", cfg(path("/api"))),
		good("path prefix", discovery.LabelPath, "/api", cfg(path("/api"))),
		good("path nested", discovery.LabelPath, "/api/v1/", cfg(path("/api/v1"))),
		good("path trimmed", discovery.LabelPath, "  /api  ", cfg(path("/api"))),
		good("path empty is root", discovery.LabelPath, "", cfg(path("/"))),
		good("path dots inside a segment", discovery.LabelPath, "/v1.2/a..b", cfg(path("/v1.2/a..b"))),
		bad("path relative", discovery.LabelPath, "api", pathStart),
		bad("path with a space", discovery.LabelPath, "/a b", pathChars),
		bad("path with a tab", discovery.LabelPath, "/a\tb", "contains a control character"),
		bad("health path with a newline in its query", discovery.LabelHealthPath, "/healthz?x=1\nHost: evil", "contains a control character"),
		bad("host with a newline", discovery.LabelHost, "a.example.com\n", "contains a control character"),
		good("response header timeout", discovery.LabelHeaderTimeout, "5m", cfg(func(c *discovery.LabelConfig) { c.ResponseHeaderTimeout = 5 * time.Minute })),
		bad("response header timeout too short", discovery.LabelHeaderTimeout, "1ms", "from 100ms to 24h"),
		bad("path with a query", discovery.LabelPath, "/api?x=1", pathChars),
		bad("path with a fragment", discovery.LabelPath, "/api#top", pathChars),
		bad("path percent-encoded", discovery.LabelPath, "/a%20b", pathChars),
		bad("path with a backslash", discovery.LabelPath, `/a\b`, pathChars),
		bad("path with dot-dot", discovery.LabelPath, "/a/../b", pathClean),
		bad("path ending in dot-dot", discovery.LabelPath, "/a/..", pathClean),
		bad("path with dot", discovery.LabelPath, "/a/./b", pathClean),
		bad("path double slash in front", discovery.LabelPath, "//x", pathClean),
		bad("path double slash at the end", discovery.LabelPath, "/api//", pathClean),

		// dlb.max_inflight, dlb.queue.max, dlb.queue.timeout
		good("max_inflight 8", discovery.LabelMaxInflight, " 8", cfg(func(c *discovery.LabelConfig) { c.MaxInflight, c.MaxInflightSet = balancer.Limit{Max: 8}, true })),
		good("max_inflight 0 (none, over --max-inflight)", discovery.LabelMaxInflight, "0", cfg(func(c *discovery.LabelConfig) { c.MaxInflightSet = true })),
		good("max_inflight auto", discovery.LabelMaxInflight, "auto", cfg(func(c *discovery.LabelConfig) { c.MaxInflight, c.MaxInflightSet = balancer.Limit{Auto: true}, true })),
		bad("max_inflight negative", discovery.LabelMaxInflight, "-1", "a whole number from 0 (no limit) to 100000, or auto"),
		bad("max_inflight word", discovery.LabelMaxInflight, "many", "or auto"),
		good("queue.max 64", discovery.LabelQueueMax, "64", cfg(func(c *discovery.LabelConfig) { c.QueueMax = 64 })),
		bad("queue.max 0", discovery.LabelQueueMax, "0", "a whole number from 1 to 1000000"),
		good("queue.timeout 5s", discovery.LabelQueueTimeout, "5s", cfg(func(c *discovery.LabelConfig) { c.QueueTimeout = 5 * time.Second })),
		bad("queue.timeout bare number", discovery.LabelQueueTimeout, "5", "from 1ms to 1h"),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := discovery.ParseLabels(tt.labels)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseLabels(%q): got %+v and no error, want an error with %q", tt.labels, got, tt.wantErr)
				}
				var le *discovery.LabelError
				if !errors.As(err, &le) {
					t.Fatalf("ParseLabels(%q): got error %T %v, want a *LabelError", tt.labels, err, err)
				}
				for label, value := range tt.labels {
					if le.Label != label || le.Value != value {
						t.Errorf("ParseLabels(%q): got LabelError{Label: %q, Value: %q}, want {%q, %q}", tt.labels, le.Label, le.Value, label, value)
					}
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("ParseLabels(%q): got error %q, want it to contain %q", tt.labels, err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLabels(%q): got error %v, want %+v", tt.labels, err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseLabels(%q):\n got %+v\nwant %+v", tt.labels, got, tt.want)
			}
		})
	}
}

func TestParseLabelsReportsTheFirstBadLabel(t *testing.T) {
	labels := map[string]string{discovery.LabelEnable: "maybe", discovery.LabelPort: "http", discovery.LabelPath: "api"}
	_, err := discovery.ParseLabels(labels)
	var le *discovery.LabelError
	if !errors.As(err, &le) || le.Label != discovery.LabelEnable {
		t.Errorf("ParseLabels(%q): got error %v, want a *LabelError for %s (labels are checked in a fixed order)", labels, err, discovery.LabelEnable)
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  int // 0: an error
	}{
		{"lowest", "1", 1},
		{"highest", "65535", 65535},
		{"spaces", "\t443 ", 443},
		{"zero", "0", 0},
		{"too high", "65536", 0},
		{"name", "http", 0},
		{"empty", "", 0},
		{"fraction", "80.5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := discovery.ParsePort(tt.input)
			if tt.want == 0 {
				if err == nil || !strings.Contains(err.Error(), strconv.Quote(tt.input)) || !strings.Contains(err.Error(), "1-65535") {
					t.Errorf("ParsePort(%q): got %d, %v; want an error quoting the input and naming 1-65535", tt.input, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParsePort(%q): got %d, %v; want %d", tt.input, got, err, tt.want)
			}
		})
	}
}

// allLabels are the labels ParseLabels reads, in the order of the fuzz
// target's arguments.
var allLabels = []string{discovery.LabelEnable, discovery.LabelPort, discovery.LabelService, discovery.LabelHost, discovery.LabelPath}

// FuzzParseLabels checks, for any label values, that ParseLabels does not
// panic, that it returns a config or a *LabelError about one of the labels
// it was given, that a config keeps its invariants, and that the normalised
// config parses to itself. Each input is parsed with all five labels and
// with each label alone (so that absent labels are covered too).
func FuzzParseLabels(f *testing.F) {
	f.Add("true", "80", "web", "example.com", "/api")
	f.Add("false", "65535", "a", "*.example.com,B.example.com", "/")
	f.Add("1", " 8080 ", "my-app_1.v2", " a.example.com , a.example.com ", "/api/v1/")
	f.Add("garbage", "0", "-web", "*", "api")
	f.Add("", "", "", "", "")
	f.Add("TRUE", "+80", "Web", "\u212aube.example", "/a/../b")
	f.Fuzz(func(t *testing.T, enable, port, service, host, path string) {
		values := []string{enable, port, service, host, path}
		all := map[string]string{}
		for i, l := range allLabels {
			all[l] = values[i]
		}
		checkParse(t, all)
		for i, l := range allLabels {
			checkParse(t, map[string]string{l: values[i]})
		}
	})
}

func checkParse(t *testing.T, labels map[string]string) {
	t.Helper()
	got, err := discovery.ParseLabels(labels)
	if err != nil {
		var le *discovery.LabelError
		if !errors.As(err, &le) {
			t.Fatalf("ParseLabels(%q): got error %T %v, want a *LabelError", labels, err, err)
		}
		if v, ok := labels[le.Label]; !ok || v != le.Value {
			t.Fatalf("ParseLabels(%q): got LabelError{Label: %q, Value: %q}, want one of the given labels with its value", labels, le.Label, le.Value)
		}
		if msg := err.Error(); !strings.Contains(msg, le.Label) || le.Want == "" {
			t.Fatalf("ParseLabels(%q): got error %q, want it to name %s and what is accepted", labels, msg, le.Label)
		}
		return
	}
	if got.Port != 0 && (got.Port < 1 || got.Port > 65535) {
		t.Fatalf("ParseLabels(%q): got port %d, want 0 or 1-65535", labels, got.Port)
	}
	if _, ok := labels[discovery.LabelPort]; ok != (got.Port != 0) {
		t.Fatalf("ParseLabels(%q): got port %d, want 0 exactly when dlb.port is absent", labels, got.Port)
	}
	if !strings.HasPrefix(got.Path, "/") || got.Path != "/" && strings.HasSuffix(got.Path, "/") {
		t.Fatalf("ParseLabels(%q): got path %q, want a leading '/' and no trailing '/' unless it is \"/\"", labels, got.Path)
	}
	if _, ok := labels[discovery.LabelService]; ok && got.Service == "" {
		t.Fatalf("ParseLabels(%q): got an empty service with no error", labels)
	}
	for i, h := range got.Hosts {
		if h != strings.ToLower(h) || h == "" || strings.ContainsAny(h, " ,:/") {
			t.Fatalf("ParseLabels(%q): got host %q, want a lower-case host name", labels, h)
		}
		if i > 0 && got.Hosts[i-1] >= h {
			t.Fatalf("ParseLabels(%q): got hosts %q, want them sorted and unique", labels, got.Hosts)
		}
	}
	if !slices.IsSorted(got.Hosts) {
		t.Fatalf("ParseLabels(%q): got hosts %q, want them sorted", labels, got.Hosts)
	}

	// What ParseLabels returns, written back as labels, parses to itself.
	again := map[string]string{discovery.LabelPath: got.Path, discovery.LabelHost: strings.Join(got.Hosts, ",")}
	if got.EnableSet {
		again[discovery.LabelEnable] = strconv.FormatBool(got.Enable)
	}
	if got.Port != 0 {
		again[discovery.LabelPort] = strconv.Itoa(got.Port)
	}
	if got.Service != "" {
		again[discovery.LabelService] = got.Service
	}
	back, err := discovery.ParseLabels(again)
	if err != nil || !reflect.DeepEqual(back, got) {
		t.Fatalf("ParseLabels(%q) = %+v; parsing that again (%q): got %+v, %v; want the same config", labels, got, again, back, err)
	}
}

func TestEnabled(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		exposed bool
		want    bool
		wantErr bool
	}{
		{"true", map[string]string{"dlb.enable": "true"}, false, true, false},
		{"1", map[string]string{"dlb.enable": "1"}, false, true, false},
		{"True with spaces", map[string]string{"dlb.enable": " True "}, false, true, false},
		{"false beats exposed by default", map[string]string{"dlb.enable": "false"}, true, false, false},
		{"no label", map[string]string{}, false, false, false},
		{"no label, exposed by default", map[string]string{}, true, true, false},
		{"malformed", map[string]string{"dlb.enable": "yes"}, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := discovery.Enabled(tt.labels, tt.exposed)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Enabled(%v, %v) = %v, %v; want %v, error %v", tt.labels, tt.exposed, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLabelErrorQuotesAtMost256Bytes(t *testing.T) {
	long := "/" + strings.Repeat("a", 10000) + " b"
	_, err := discovery.ParseLabels(map[string]string{discovery.LabelPath: long})
	if err == nil {
		t.Fatal("ParseLabels of a 10 KB bad path: no error, want one")
	}
	msg := err.Error()
	if len(msg) > 600 || !strings.Contains(msg, "(10003 bytes)") {
		t.Fatalf("error of a 10 KB label value is %d bytes long (want it cut to the value's first 256 bytes and its length): %.300s", len(msg), msg)
	}
}
