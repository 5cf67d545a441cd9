package gc

import "testing"

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"1024", 1024, false},
		{"256MiB", 256 << 20, false},
		{"256mib", 256 << 20, false},
		{"1GiB", 1 << 30, false},
		{"512MB", 512 << 20, false},
		{"64k", 64 << 10, false},
		{" 2 GiB ", 2 << 30, false},
		{"lots", 0, true},
		{"-1MiB", 0, true},
		{"MiB", 0, true},
		{"9999999999GiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLimit(%q): got %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
