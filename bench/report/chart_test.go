package main

import (
	"math"
	"testing"
)

func TestNiceCeil(t *testing.T) {
	tests := []struct {
		name     string
		in, want float64
	}{
		{"exact power", 100, 100},
		{"just above a power", 101, 150},
		{"two and a half", 2.3, 2.5},
		{"five", 4200, 5000},
		{"eight", 7300, 8000},
		{"up to ten", 8100, 10000},
		{"below one", 0.042, 0.05},
		{"zero gives one", 0, 1},
		{"NaN gives one", math.NaN(), 1},
	}
	for _, tc := range tests {
		if got := niceCeil(tc.in); math.Abs(got-tc.want) > 1e-9*tc.want {
			t.Errorf("%s: niceCeil(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestShort(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{1250000, "1.25M"},
		{12345, "12.3k"},
		{20000, "20k"},
		{8000, "8k"},
		{1250, "1.25k"},
		{950, "950"},
		{12.34, "12.3"},
		{1.5, "1.5"},
		{0.25, "0.25"},
		{0, "0"},
	}
	for _, tc := range tests {
		if got := short(tc.in); got != tc.want {
			t.Errorf("short(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
