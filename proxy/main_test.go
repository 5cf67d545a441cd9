package proxy

import (
	"fmt"
	"os"
	"testing"
)

// testTransport is the upstream transport the tests' fronts use.
var testTransport string

// TestMain runs the package's tests once per upstream transport, so that both
// stay tested: fast, then std. DLB_UPSTREAM_TRANSPORT=fast or std runs one.
func TestMain(m *testing.M) {
	transports := []string{TransportFast, TransportStd}
	if only := os.Getenv("DLB_UPSTREAM_TRANSPORT"); only != "" {
		transports = []string{only}
	}
	for _, tr := range transports {
		testTransport = tr
		fmt.Printf("=== upstream transport %s\n", tr)
		if code := m.Run(); code != 0 {
			os.Exit(code)
		}
	}
	os.Exit(0)
}
