// Package bytesize reads byte counts written with a unit, the one size
// syntax of dlb's labels and flags (dlb.max_body, --memory-limit).
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// units are the suffixes Parse takes, longest first within each power so
// that "kib" is not read as "b".
var units = []struct {
	suffix string
	mult   int64
}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}}

// Parse reads a byte count with an optional unit, case-insensitive, all
// powers of 1024: B; k, KB or KiB; m, MB or MiB; g, GB or GiB (e.g. 512,
// 64k, 10m, 256MiB, 1GiB). It takes 0 and sizes up to 4 EiB; callers set
// their own bounds.
func Parse(v string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return n * mult, nil
}
