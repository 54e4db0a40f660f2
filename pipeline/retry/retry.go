// Package retry holds the one backoff every layer that retries uses: the
// pipeline between tries of an event, the HyperFleet API client between
// calls, the Maestro backends between conflicting writes and reconnects.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry n (1-based): initial doubling up to limit,
// then jittered into [d/2, d] so that replicas retrying after one outage,
// or two writers that lost the same race, do not retry in lockstep.
func Delay(initial, limit time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or returns ctx.Err() when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
