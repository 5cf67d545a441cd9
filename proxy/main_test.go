package proxy

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// testTransport and testDataPath are the upstream transport and the data
// path the tests' fronts use.
var testTransport, testDataPath string

// TestMain runs the package's tests once per data path and upstream
// transport, so that all stay tested: the fast data path (which needs the
// fast transport), then the std one with either transport.
// DLB_DATA_PATH=fast or std and DLB_UPSTREAM_TRANSPORT=fast or std run
// fewer.
func TestMain(m *testing.M) {
	runs := [][2]string{{DataPathFast, TransportFast}, {DataPathStd, TransportFast}, {DataPathStd, TransportStd}}
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		runs = runs[:1] // the fuzz targets test the parser alone: once is enough
	}
	onlyPath, onlyTransport := os.Getenv("DLB_DATA_PATH"), os.Getenv("DLB_UPSTREAM_TRANSPORT")
	for _, run := range runs {
		if onlyPath != "" && run[0] != onlyPath || onlyTransport != "" && run[1] != onlyTransport {
			continue
		}
		testDataPath, testTransport = run[0], run[1]
		fmt.Printf("=== data path %s, upstream transport %s\n", run[0], run[1])
		if code := m.Run(); code != 0 {
			os.Exit(code)
		}
	}
	os.Exit(0)
}
