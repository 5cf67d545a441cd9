package admin

import (
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
	return resp, string(body)
}

func TestUIServesFiles(t *testing.T) {
	srv := httptest.NewServer(UI())
	defer srv.Close()

	for _, tc := range []struct {
		path  string
		types []string // acceptable media types
		want  string   // a string the body must contain
	}{
		{"/", []string{"text/html"}, "<!doctype html>"},
		// Go's built-in table says text/javascript; a system mime.types file
		// may say application/javascript. Browsers take either.
		{"/app.js", []string{"text/javascript", "application/javascript"}, "EventSource"},
		{"/style.css", []string{"text/css"}, ".replica"},
	} {
		resp, body := get(t, srv.URL+tc.path)
		ct := resp.Header.Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Errorf("%s: bad Content-Type %q: %v", tc.path, ct, err)
		}
		ok := false
		for _, want := range tc.types {
			ok = ok || mt == want
		}
		if !ok {
			t.Errorf("%s: Content-Type %q, want one of %v", tc.path, ct, tc.types)
		}
		if !strings.Contains(body, tc.want) {
			t.Errorf("%s: body does not contain %q", tc.path, tc.want)
		}
	}
}

func TestUIIndexReferencesAssets(t *testing.T) {
	srv := httptest.NewServer(UI())
	defer srv.Close()

	_, index := get(t, srv.URL+"/")
	for _, ref := range []string{`src="app.js"`, `href="style.css"`} {
		if !strings.Contains(index, ref) {
			t.Errorf("index.html does not contain %s", ref)
		}
	}
}

// Names and addresses come from container labels: the script must only ever
// put them in the page as text.
func TestUIScriptBuildsNoMarkup(t *testing.T) {
	srv := httptest.NewServer(UI())
	defer srv.Close()

	_, js := get(t, srv.URL+"/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
