package proxy

import (
	"testing"
	"time"
)

// TestRetryBudget drives a budget with a fake clock: a steady request rate
// for a while, then a burst of failures asking for retries at once.
func TestRetryBudget(t *testing.T) {
	reserve := RetryBudgetMinPerSecond * int(RetryBudgetWindow/time.Second)
	tests := []struct {
		name    string
		rate    int           // requests a second before the burst
		warm    time.Duration // how long at that rate
		burst   int           // retries asked for at once
		wantMin int           // granted, at least
		wantMax int           // and at most
	}{
		{"a new service gets the reserve", 0, 0, 1000, reserve, reserve},
		// Less the retries of the last seconds (about 10).
		{"a quiet service gets the reserve", 1, time.Minute, 1000, reserve - 15, reserve},
		// 1000 a second for a minute: about 10,000 requests in the
		// window, 20% of them, plus the reserve.
		{"a busy service gets a fifth of its requests", 1000, time.Minute, 10000, 2000 + reserve - 60, 2000 + reserve},
		{"a short burst asks for less than it may", 1000, time.Minute, 50, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b retryBudget
			now := time.Unix(1000, 0)
			var total int64
			// One retry a second while warming up (its try counts as
			// a request too).
			for range int(tt.warm / time.Second) {
				now = now.Add(time.Second)
				total += int64(tt.rate) + 1
				b.withdraw(now, total)
			}
			granted := 0
			for range tt.burst {
				if ok, _ := b.withdraw(now, total); ok {
					granted++
				}
			}
			if granted < tt.wantMin || granted > tt.wantMax {
				t.Errorf("%d retries asked at once after %s at %d/s: %d granted, want %d to %d", tt.burst, tt.warm, tt.rate, granted, tt.wantMin, tt.wantMax)
			}
		})
	}
}

// TestRetryBudgetRefills: a spent budget refills as requests succeed, and
// its reserve comes back with time; exhaustion is reported once per window.
func TestRetryBudgetRefills(t *testing.T) {
	var b retryBudget
	now := time.Unix(1000, 0)
	var total int64
	granted, reports := 0, 0
	for range 200 {
		ok, refused := b.withdraw(now, total)
		if ok {
			granted++
		}
		if refused > 0 {
			reports++
		}
	}
	if granted != 100 || reports != 1 {
		t.Fatalf("200 retries at once on a new budget: %d granted, %d reports; want 100 and 1", granted, reports)
	}
	// 5 s later, 2000 requests went by: about a fifth of them decayed a
	// little, plus the reserve's refill.
	now = now.Add(5 * time.Second)
	total += 2000
	granted, reports = 0, 0
	for range 1000 {
		ok, refused := b.withdraw(now, total)
		if ok {
			granted++
		}
		if refused > 0 {
			reports++
		}
	}
	if granted < 300 || granted > 400 {
		t.Errorf("after 5 s and 2000 requests: %d retries granted, want 300 to 400", granted)
	}
	if reports != 0 {
		t.Errorf("exhausted again within the window: %d reports, want 0 (one per window)", reports)
	}
	now = now.Add(RetryBudgetWindow)
	for range 2000 {
		if _, refused := b.withdraw(now, total); refused > 0 {
			reports++
			if refused < 2 {
				t.Errorf("the report counts %d refused retries, want those since the last report", refused)
			}
		}
	}
	if reports != 1 {
		t.Errorf("exhausted after a window: %d reports, want 1", reports)
	}
}
