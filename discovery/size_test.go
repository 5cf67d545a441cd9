package discovery

import "testing"

// dlb.max_body reads sizes as --memory-limit does (one parser), within its
// own bounds: at least one byte, at most 1 PiB.
func TestMaxBodyLabel(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"512", 512, false},
		{"64k", 64 << 10, false},
		{"64kb", 64 << 10, false},
		{"64KiB", 64 << 10, false},
		{"10m", 10 << 20, false},
		{"1g", 1 << 30, false},
		{"0", 0, true},
		{"-1k", 0, true},
		{"lots", 0, true},
		{"1048577g", 0, true}, // just over 1 PiB
	}
	for _, tt := range tests {
		c, err := ParseLabels(map[string]string{LabelMaxBody: tt.in})
		if (err != nil) != tt.wantErr || c.MaxBody != tt.want {
			t.Errorf("ParseLabels(dlb.max_body=%q): got %d, %v; want %d, error %v", tt.in, c.MaxBody, err, tt.want, tt.wantErr)
		}
	}
}
