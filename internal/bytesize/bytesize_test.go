package bytesize

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{" 512B ", 512, false},
		{"64k", 64 << 10, false},
		{"64KB", 64 << 10, false},
		{"64 KiB", 64 << 10, false},
		{"10m", 10 << 20, false},
		{"256MiB", 256 << 20, false},
		{"1GiB", 1 << 30, false},
		{"4294967296g", 1 << 62, false},
		{"4294967297g", 0, true},
		{"-1k", 0, true},
		{"1.5g", 0, true},
		{"lots", 0, true},
		{"", 0, true},
		{"k", 0, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
