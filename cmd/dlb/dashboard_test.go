package main

// The dashboard in a real headless Chromium, driven over the DevTools
// protocol (chromedp): Chromium's own --screenshot mode never finishes on a
// page with an open EventSource.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserNames are the executables tried for Chromium, in order.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

// requireBrowser returns the path of Chromium; it skips the test when
// DLB_SKIP_BROWSER=1 or DLB_SKIP_DOCKER=1 and fails it, saying how to
// install Chromium, when there is none.
func requireBrowser(t *testing.T) string {
	t.Helper()
	if os.Getenv("DLB_SKIP_BROWSER") == "1" {
		t.Skip("DLB_SKIP_BROWSER=1: skipping a test that needs Chromium")
	}
	if os.Getenv("DLB_SKIP_DOCKER") == "1" {
		t.Skip("DLB_SKIP_DOCKER=1: skipping a browser test of dlb in front of containers")
	}
	for _, name := range browserNames {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("this test needs Chromium and found none (looked for %s in $PATH): run `make test-deps` (or `apt-get install -y chromium` on Debian), or set DLB_SKIP_BROWSER=1 to skip the browser tests",
		strings.Join(browserNames, ", "))
	return ""
}

// newBrowser starts a headless Chromium for the test and returns a tab's
// context; JavaScript exceptions on the page fail the test.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	var mu sync.Mutex
	var exceptions []string
	err := chromedp.Listen(ctx, func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			exceptions = append(exceptions, (&chromedp.ExceptionError{ExceptionDetails: ex.ExceptionDetails}).Error())
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range exceptions {
			t.Errorf("JavaScript exception on the dashboard: %s", e)
		}
	})
	return ctx
}

// poolRows is what the dashboard shows of one pool's replicas.
type poolRows struct {
	Rows  int      `json:"rows"`  // replica rows (not counting those fading out)
	Ready int      `json:"ready"` // of them, shown as ready
	Names []string `json:"names"`
}

// dashboardRows reads the replica rows of the card of pool from the page.
func dashboardRows(ctx context.Context, pool string) (poolRows, error) {
	name, _ := json.Marshal(pool)
	js := `(() => {
  const out = {rows: 0, ready: 0, names: []};
  for (const card of document.querySelectorAll("section.pool")) {
    const title = card.querySelector(".pool-name");
    if (!title || title.textContent !== ` + string(name) + `) continue;
    for (const li of card.querySelectorAll("li.replica:not(.leaving)")) {
      out.rows++;
      if (li.classList.contains("st-ready")) out.ready++;
      const n = li.querySelector(".r-name");
      out.names.push(n ? n.textContent : "");
    }
  }
  return out;
})()`
	return chromedp.Run(ctx, chromedp.Evaluate[poolRows](js))
}

// TestDashboardFollowsScaling opens the dashboard of a real dlb in front of
// a service scaled to 3, scales it to 6, and checks that the page shows the
// 6 replicas within 2 s of `compose up` returning.
func TestDashboardFollowsScaling(t *testing.T) {
	parallel(t) // waits on the engine mostly (see e2e_test.go)
	chromium := requireBrowser(t)
	requireDocker(t)
	p := newProject(t, appProject)
	p.scale("app", 3)
	d := startDLB(t, "--network", "appnet", "--project", p.name)
	pool := p.name + "-app"
	d.waitReady(t, pool, 3, 5*time.Second)

	ctx := newBrowser(t, chromium)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opened := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(d.adminURL+"/")); err != nil {
		t.Fatalf("opening %s/ in Chromium: %v", d.adminURL, err)
	}
	// The first wait includes Chromium's start on a busy machine.
	var rows poolRows
	waitFor(t, 30*time.Second, "the dashboard to show 3 ready replicas", func() (bool, string) {
		var err error
		rows, err = dashboardRows(ctx, pool)
		return err == nil && rows.Rows == 3 && rows.Ready == 3, fmt.Sprintf("%+v %v", rows, err)
	})
	t.Logf("the dashboard showed the 3 ready replicas %s after navigating", time.Since(opened).Round(time.Millisecond))

	began := time.Now()
	p.scale("app", 6)
	returned := time.Now()
	appeared := waitFor(t, 2*time.Second, "the dashboard to show 6 replicas after `compose up --scale app=6` returned", func() (bool, string) {
		var err error
		rows, err = dashboardRows(ctx, pool)
		return err == nil && rows.Rows == 6, fmt.Sprintf("%+v %v", rows, err)
	})
	waitFor(t, 5*time.Second, "the dashboard to show the 6 replicas ready", func() (bool, string) {
		var err error
		rows, err = dashboardRows(ctx, pool)
		return err == nil && rows.Rows == 6 && rows.Ready == 6, fmt.Sprintf("%+v %v", rows, err)
	})
	t.Logf("`compose up --scale app=6` took %s; after it returned, the dashboard showed 6 replicas after %s, all 6 ready after %s",
		returned.Sub(began).Round(time.Millisecond), appeared.Round(time.Millisecond), time.Since(returned).Round(time.Millisecond))

	// The page's names are the containers' names, as in /api/pools.
	want := d.replicaNames(pool)
	if got := slices.Sorted(slices.Values(rows.Names)); !slices.Equal(got, want) {
		t.Errorf("the dashboard shows replicas %v, /api/pools has %v", got, want)
	}

	// Keep a picture of the page with some traffic on it: send requests
	// until the page shows a rate.
	waitFor(t, 10*time.Second, "the dashboard to show a request rate", func() (bool, string) {
		spread(t, d.proxyURL+"/", 12)
		rate, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("section.pool .pool-rate-val") || {}).textContent || ""`))
		return err == nil && rate != "" && rate != "0" && rate != "–", fmt.Sprintf("rate %q %v", rate, err)
	})
	t.Logf("screenshot of the dashboard: %s", screenshot(t, ctx, "dashboard-scaled-to-6.png"))
}

// screenshot saves the page as test-artifacts/name and returns its path.
func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir, _ := filepath.Abs(filepath.Join("..", "..", "test-artifacts"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, name)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return shot
}
