package maestrotest

import (
	"testing"
	"time"
)

func TestReconnectStep(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 5 * time.Second, 2: 25 * time.Second, 3: time.Minute, 4: time.Minute, 10: time.Minute} {
		if got := reconnectStep(n); got != want {
			t.Errorf("reconnectStep(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestPerProcessBackoff: clients noticing the same outage draw the same
// step; the step advances per outage and starts over after 10 quiet minutes.
func TestPerProcessBackoff(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	now := start
	b := &perProcessBackoff{now: func() time.Time { return now }}
	calls := []struct {
		at       time.Duration // since start
		min, max time.Duration // the delay's range: step, step+100% jitter
	}{
		// a restart: three clients notice it within milliseconds
		{0, 5 * time.Second, 10 * time.Second},
		{time.Millisecond, 5 * time.Second, 10 * time.Second},
		{3 * time.Millisecond, 5 * time.Second, 10 * time.Second},
		// a second restart soon after
		{2 * time.Minute, 25 * time.Second, 50 * time.Second},
		{2*time.Minute + 5*time.Millisecond, 25 * time.Second, 50 * time.Second},
		// a third, then a retry of one client
		{4 * time.Minute, time.Minute, 2 * time.Minute},
		{5 * time.Minute, time.Minute, 2 * time.Minute},
		// ten quiet minutes: the sequence starts over
		{16 * time.Minute, 5 * time.Second, 10 * time.Second},
	}
	for _, c := range calls {
		now = start.Add(c.at)
		for range 20 { // jitter: several draws at the same instant share the step
			if d := b.next(); d < c.min || d >= c.max {
				t.Fatalf("delay at +%s = %s, want in [%s, %s)", c.at, d, c.min, c.max)
			}
		}
	}
}
